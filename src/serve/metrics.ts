// Prometheus text exposition (format 0.0.4) of the server's counters, gauges and histograms.

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Counter {
  readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const v = this.values.get(key) ?? { labels, value: 0 };
    v.value += by;
    this.values.set(key, v);
  }
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines.join('\n');
  }
}

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    this.buckets.forEach((b, i) => {
      if (v <= b) this.counts[i]!++;
    });
  }
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join('\n');
  }
}

export class ServerMetrics {
  readonly requests = new Counter('deltatune_requests_total', 'HTTP requests answered, by route and status code');
  readonly images = new Counter('deltatune_images_total', 'images classified, by delta');
  readonly switches = new Counter('deltatune_delta_switches_total', 'times the inference thread attached a different delta');
  readonly rejected = new Counter('deltatune_rejected_total', 'requests refused before inference, by reason');
  readonly latency = new Histogram('deltatune_request_duration_seconds', 'time from a predict request to its answer', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  readonly batchSize = new Histogram('deltatune_batch_size', 'images per batch run by the engine', [1, 2, 4, 8, 16, 32, 64, 128]);
  readonly compute = new Histogram('deltatune_batch_compute_seconds', 'engine time per batch', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);

  /** The whole exposition, with the gauges read now. */
  text(gauges: { queueDepth: number; inFlight: number; deltas: number; rssBytes: number; liveTensors: number; heapBytes: number; tensorBytes: number; cachedTensorBytes: number }): string {
    const gauge = (name: string, help: string, v: number): string => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${v}`;
    return [
      this.requests.text(), this.images.text(), this.switches.text(), this.rejected.text(),
      this.latency.text(), this.batchSize.text(), this.compute.text(),
      gauge('deltatune_queue_depth', 'images waiting for the inference thread', gauges.queueDepth),
      gauge('deltatune_requests_in_flight', 'predict requests being decoded, queued or run', gauges.inFlight),
      gauge('deltatune_deltas_loaded', 'deltas loaded over the base', gauges.deltas),
      gauge('process_resident_memory_bytes', 'resident memory of the server process', gauges.rssBytes),
      gauge('deltatune_engine_live_tensors', 'native tensors alive on the inference thread (model, deltas; flat unless something leaks)', gauges.liveTensors),
      gauge('deltatune_engine_tensor_bytes', 'tensor memory in use on the inference thread (the large blocks of the caching allocator)', gauges.tensorBytes),
      gauge('deltatune_engine_cached_tensor_bytes', 'tensor memory freed but kept for the next batches (bounded)', gauges.cachedTensorBytes),
      gauge('deltatune_js_heap_used_bytes', 'JavaScript heap in use, HTTP and inference threads together', gauges.heapBytes),
    ].join('\n') + '\n';
  }
}
