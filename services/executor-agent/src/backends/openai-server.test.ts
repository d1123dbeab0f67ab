import { parseEngineMetrics, parseModelList } from './openai-server';

describe('what an OpenAI-compatible server says of itself', () => {
  it("reads /v1/models: every model's id, and vLLM's max_model_len when given", () => {
    const text = JSON.stringify({
      object: 'list',
      data: [
        { id: 'acme/llama-3.1-8b-support', object: 'model', owned_by: 'vllm', max_model_len: 16384 },
        { id: 'tinyllama', object: 'model' },
        { object: 'model' },
      ],
    });
    expect(parseModelList(text)).toEqual([
      { name: 'acme/llama-3.1-8b-support', contextLength: 16384 },
      { name: 'tinyllama', contextLength: 0 },
    ]);
    expect(parseModelList('not json')).toBeUndefined();
    expect(parseModelList('{"object":"list"}')).toBeUndefined();
  });

  it("reads vLLM's queue and KV-cache gauges per model, under the old and the new cache metric name", () => {
    const text = [
      '# HELP vllm:num_requests_running Number of requests in model execution batches.',
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running{engine="0",model_name="acme/llama-3.1-8b-support"} 12.0',
      'vllm:num_requests_waiting{engine="0",model_name="acme/llama-3.1-8b-support"} 3.0',
      'vllm:gpu_cache_usage_perc{engine="0",model_name="acme/llama-3.1-8b-support"} 0.42',
      'vllm:kv_cache_usage_perc{engine="0",model_name="other"} 1.5',
      'vllm:num_requests_waiting{model_name="other"} NaN',
      'process_cpu_seconds_total 12.5',
    ].join('\n');
    expect(Object.fromEntries(parseEngineMetrics(text))).toEqual({
      'acme/llama-3.1-8b-support': { running: 12, waiting: 3, kvCacheUsage: 0.42 },
      other: { running: 0, waiting: 0, kvCacheUsage: 1 },
    });
  });

  it('adds the requests of a data-parallel server’s engines and keeps its fullest cache', () => {
    const text = [
      'vllm:num_requests_running{engine="0",model_name="m"} 5.0',
      'vllm:num_requests_running{engine="1",model_name="m"} 7.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 2.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.3',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6',
    ].join('\n');
    expect(parseEngineMetrics(text).get('m')).toEqual({ running: 12, waiting: 3, kvCacheUsage: 0.6 });
  });
});
