import { ListNodesResponse, Node, type DecisionServiceClient } from '@autoglm/proto';
import { ServedModels } from './served-models';

/** A decision that answers ListNodes with these nodes' served models. */
function decisionServing(nodes: Array<Array<{ name: string; contextLength: number }>>): DecisionServiceClient {
  const response = ListNodesResponse.fromPartial({ nodes: nodes.map((servedModels, i) => Node.fromPartial({ nodeId: `n${i}`, servedModels })) });
  const listNodes = (_req: unknown, _md: unknown, _opts: unknown, callback: (err: Error | null, res: ListNodesResponse) => void) => {
    callback(null, response);
    return {};
  };
  return { listNodes } as unknown as DecisionServiceClient;
}

describe('ServedModels', () => {
  it('holds a model to the smallest context window any of its servers reports, ignoring those that do not say', async () => {
    const served = new ServedModels(
      decisionServing([
        [{ name: 'acme/7b', contextLength: 32_768 }],
        [{ name: 'acme/7b', contextLength: 4096 }],
        [{ name: 'acme/7b', contextLength: 0 }, { name: 'acme/unsized', contextLength: 0 }],
      ]),
      1000,
    );
    await served.lookUp('acme/7b', false);
    expect(served.get('acme/7b')).toEqual({ contextLength: 4096 });
    expect(served.get('acme/unsized')).toEqual({ contextLength: 0 });
    expect(served.get('acme/none')).toBeUndefined();
  });
});
