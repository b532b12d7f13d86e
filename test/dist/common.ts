// Shared by the data-parallel tests: a free loopback port, and how far two runs' weights are apart.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadSafetensors, type Tensor } from '../../src/index.js';

/** A port that was free a moment ago (TCPStore's server cannot report a port it picked itself). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The largest absolute difference between two runs' last deltas (the same tensor names required). */
export function maxDeltaDiff(runA: string, runB: string): number {
  const a = loadSafetensors(join(runA, 'last', 'delta.safetensors')).tensors;
  const b = loadSafetensors(join(runB, 'last', 'delta.safetensors')).tensors;
  try {
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    let worst = 0;
    for (const [k, t] of a) {
      const x = t.toNumbers();
      const y = (b.get(k) as Tensor).toNumbers();
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    }
    return worst;
  } finally {
    [...a.values(), ...b.values()].forEach((t) => t.dispose());
  }
}
