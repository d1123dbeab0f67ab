import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The Azure LLM inference trace 2023, conversation service (CC BY 4.0). The
 * attribution below must travel with anything derived from the trace: the
 * quality benchmark prints it and writes it into its JSON.
 */
export const AZURE_TRACE_ATTRIBUTION =
  'Azure LLM inference trace 2023 (conversation), from the Azure Public Dataset, file data/AzureLLMInferenceTrace_conv.csv, ' +
  'published with: Pratyush Patel, Esha Choukse, Chaojie Zhang, Aashaka Shah, Íñigo Goiri, Saeed Maleki, Ricardo Bianchini, ' +
  '"Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024. License: CC BY 4.0.';

/** Where the shared copy lives: ../shared from the repository root. */
export const DEFAULT_AZURE_CONV_TRACE = path.resolve(__dirname, '..', '..', '..', 'shared', 'traces', 'azure-llm-2023', 'conv.csv');

/** One request of the trace: when it arrived (ms from the first arrival), its prompt and output lengths. */
export interface TraceRequest {
  atMs: number;
  contextTokens: number;
  generatedTokens: number;
}

/**
 * Reads `TIMESTAMP,ContextTokens,GeneratedTokens` rows (the timestamp is UTC
 * with up to 7 fractional digits), in file order, with arrival times relative
 * to the first row. `limit` keeps the first rows only.
 */
export function loadAzureTrace(file: string, limit = Infinity): TraceRequest[] {
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/);
  const header = lines[0]?.trim();
  if (header !== 'TIMESTAMP,ContextTokens,GeneratedTokens') throw new Error(`${file}: unexpected header "${header}"`);
  const out: TraceRequest[] = [];
  let first: number | undefined;
  for (let i = 1; i < lines.length && out.length < limit; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const [stamp, context, generated] = line.split(',');
    const at = parseStamp(stamp ?? '');
    const contextTokens = Number(context);
    const generatedTokens = Number(generated);
    if (!Number.isFinite(at) || !Number.isInteger(contextTokens) || !Number.isInteger(generatedTokens)) throw new Error(`${file}:${i + 1}: cannot read "${line}"`);
    first ??= at;
    out.push({ atMs: at - first, contextTokens, generatedTokens });
  }
  // The published file is in arrival order; replaying it needs that.
  for (let i = 1; i < out.length; i++) if (out[i]!.atMs < out[i - 1]!.atMs) throw new Error(`${file}: row ${i + 2} arrives before the row above it`);
  return out;
}

/** "2023-11-16 18:15:46.6805900" → epoch ms (fractional). */
function parseStamp(stamp: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(stamp);
  if (!m) return NaN;
  const [, y, mo, d, h, mi, s, frac] = m;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + (frac ? Number(`0.${frac}`) * 1000 : 0);
}
