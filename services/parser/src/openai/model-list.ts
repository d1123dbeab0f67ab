/** One entry of OpenAI's model list. */
export interface OpenAiModel {
  id: string;
  object: 'model';
  /** Unix seconds: when this server started (the catalog has no dates). */
  created: number;
  owned_by: string;
}

/** GET /v1/models: the catalog's models, then those only agents' servers list, each once. */
export function modelList(catalog: readonly string[], served: readonly string[], created: number): { object: 'list'; data: OpenAiModel[] } {
  const names = [...new Set([...catalog, ...served])];
  return { object: 'list', data: names.map((id) => modelEntry(id, created)) };
}

export function modelEntry(id: string, created: number): OpenAiModel {
  return { id, object: 'model', created, owned_by: 'autoglm' };
}
