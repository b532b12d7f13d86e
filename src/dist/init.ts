// initProcessGroup: torch.distributed.init_process_group's init methods (tcp://, file://, env://).
import { DEFAULT_TIMEOUT_MS, Store } from './store.js';
import { ProcessGroup, type GlooDevice } from './process-group.js';

export interface InitProcessGroupOptions {
  backend?: 'gloo';
  /**
   * 'tcp://host:port' (rank 0 serves the store), 'file:///path/to/file' (a file every rank sees),
   * or 'env://' (default): MASTER_ADDR, MASTER_PORT, and RANK / WORLD_SIZE unless given, as torchrun
   * sets them.
   */
  initMethod?: string;
  rank?: number;
  worldSize?: number;
  timeoutMs?: number;
  devices?: GlooDevice[];
  threads?: number;
}

function envInt(name: string): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') throw new Error(`initProcessGroup: env:// needs the environment variable ${name}`);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`initProcessGroup: ${name}=${raw} is not a non-negative integer`);
  return n;
}

function parseHostPort(hostPort: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(hostPort);
  if (!m) throw new Error(`initProcessGroup: ${what} must be host:port, got ${JSON.stringify(hostPort)}`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new RangeError(`initProcessGroup: port ${port} out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Opens the store `initMethod` names and joins the process group; the group owns the store. */
export async function initProcessGroup(options: InitProcessGroupOptions = {}): Promise<ProcessGroup> {
  const backend = options.backend ?? 'gloo';
  if (backend !== 'gloo') throw new Error(`initProcessGroup: backend ${String(backend)} is not supported (only gloo)`);
  const initMethod = options.initMethod ?? 'env://';
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let rank = options.rank;
  let worldSize = options.worldSize;
  let store: Store;
  if (initMethod.startsWith('env://')) {
    rank ??= envInt('RANK');
    worldSize ??= envInt('WORLD_SIZE');
    const host = process.env.MASTER_ADDR;
    if (!host) throw new Error('initProcessGroup: env:// needs the environment variable MASTER_ADDR');
    const { port } = parseHostPort(`${host.includes(':') ? `[${host}]` : host}:${envInt('MASTER_PORT')}`, 'MASTER_ADDR:MASTER_PORT');
    store = await Store.create({ type: 'tcp', host, port, worldSize, isServer: rank === 0, timeoutMs });
  } else if (initMethod.startsWith('tcp://')) {
    if (rank === undefined || worldSize === undefined) throw new Error('initProcessGroup: tcp:// needs rank and worldSize');
    const { host, port } = parseHostPort(initMethod.slice('tcp://'.length), 'tcp://');
    store = await Store.create({ type: 'tcp', host, port, worldSize, isServer: rank === 0, timeoutMs });
  } else if (initMethod.startsWith('file://')) {
    if (rank === undefined || worldSize === undefined) throw new Error('initProcessGroup: file:// needs rank and worldSize');
    const path = decodeURIComponent(initMethod.slice('file://'.length));
    if (!path.startsWith('/')) throw new Error(`initProcessGroup: file:// needs an absolute path (file:///tmp/x), got ${initMethod}`);
    store = await Store.create({ type: 'file', path, worldSize, timeoutMs });
  } else {
    throw new Error(`initProcessGroup: initMethod must start with tcp://, file:// or env://, got ${JSON.stringify(initMethod)}`);
  }
  try {
    return await ProcessGroup.create(store, { rank, worldSize, timeoutMs, devices: options.devices, threads: options.threads }, true);
  } catch (err) {
    store.dispose();
    throw err;
  }
}
