// A restricted unpickler written from scratch. Python's pickle is a small stack machine whose
// GLOBAL/REDUCE opcodes can call any importable function, which is how a malicious .pth file
// runs code. This machine only builds plain values; every global, call and persistent id goes
// through hooks that allow a fixed list and refuse everything else. Nothing is ever evaluated.
//
// Python values map to: None → null, bool → boolean, int → number (bigint beyond 2^53),
// float → number, str → string, bytes → Uint8Array, tuple/list → Array, dict → Map, set → Set.

/** @internal What the caller decides: which globals exist, and what calling them means. */
export interface UnpickleHooks {
  /** GLOBAL / STACK_GLOBAL: return a value standing for `module.name`, or throw to refuse it. */
  findGlobal(module: string, name: string): unknown;
  /** REDUCE: `fn(*args)`. */
  call(fn: unknown, args: unknown[]): unknown;
  /** NEWOBJ: `cls.__new__(cls, *args)`. */
  newObject(cls: unknown, args: unknown[]): unknown;
  /** BUILD: `obj.__setstate__(state)`; returns the object that stays on the stack. */
  build(obj: unknown, state: unknown): unknown;
  /** BINPERSID: `persistent_load(pid)`. */
  persistentLoad(pid: unknown): unknown;
}

/** Limits a hostile pickle runs into long before memory or time does. */
const MAX_STACK = 1 << 22;
const MAX_MEMO = 1 << 22;
const MAX_MARK_DEPTH = 10_000;
const MAX_LONG_BYTES = 1024;
// Strings and bytes are bounded by the input, but one or two opcode bytes make a whole object:
// '}' + 'a' appends a new dict to a list, so a 256 MB data.pkl could build 128 M Maps (~25 GB)
// or a list of 128 M references. torch.save's pickle of a module's state dict makes ~24 values
// and ~9 containers per tensor (measured), so these admit ~450k tensors, near the
// INPUT_LIMITS.tensors of a weights file, and bound what a hostile pickle builds to ~1 GB.
/** Values pushed on the stack (each is at most one slot of one container). */
const MAX_VALUES = 1 << 24;
/** Containers (tuples, lists, dicts, sets) and objects the hooks make. */
const MAX_CONTAINERS = 1 << 22;

const NAMES: Record<number, string> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x2e: 'STOP', 0x28: 'MARK', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP',
  0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x74: 'TUPLE', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x64: 'DICT', 0x6c: 'LIST',
  0x73: 'SETITEM', 0x75: 'SETITEMS', 0x61: 'APPEND', 0x65: 'APPENDS',
  0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE', 0x68: 'BINGET', 0x6a: 'LONG_BINGET',
  0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x47: 'BINFLOAT',
  0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE',
  0x58: 'BINUNICODE', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8',
  0x43: 'SHORT_BINBYTES', 0x42: 'BINBYTES', 0x8e: 'BINBYTES8', 0x96: 'BYTEARRAY8',
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x51: 'BINPERSID',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * @internal Runs the pickle in `data` and returns its result. Errors name `what`, the opcode
 * and its byte offset. Work is linear in the input: each opcode consumes at least one byte.
 */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks, what: string): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let opPos = 0;
  let op = 0;

  const take = (n: number): number => {
    if (n > data.length - pos) throw new Error(`needs ${n} bytes but only ${data.length - pos} remain (truncated)`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => data[take(1)]!;
  const u16 = () => view.getUint16(take(2), true);
  const u32 = () => view.getUint32(take(4), true);
  const u64 = () => {
    const v = view.getBigUint64(take(8), true);
    // Any length beyond the input is refused by take(); clamp so the comparison stays exact.
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const bytes = (n: number) => data.subarray(take(n), pos);
  const text = (n: number) => {
    const b = bytes(n);
    try {
      return utf8.decode(b);
    } catch {
      throw new Error('string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 1024) throw new Error('GLOBAL name is not a line of at most 1024 bytes');
    const s = Buffer.from(data.subarray(pos, end)).toString('latin1');
    pos = end + 1;
    return s;
  };
  let values = 0;
  let containers = 0;
  const push = (v: unknown) => {
    if (stack.length >= MAX_STACK) throw new Error(`stack exceeds ${MAX_STACK} items`);
    if (++values > MAX_VALUES) throw new Error(`the pickle makes more than ${MAX_VALUES} values, the limit for a checkpoint's data.pkl`);
    stack.push(v);
  };
  /** Pushes a container or object just made. */
  const made = (v: unknown) => {
    if (++containers > MAX_CONTAINERS) throw new Error(`the pickle makes more than ${MAX_CONTAINERS} containers, the limit for a checkpoint's data.pkl`);
    push(v);
  };
  const base = () => (marks.length ? marks[marks.length - 1]! : 0);
  const pop = (): unknown => {
    if (stack.length <= base()) throw new Error('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length <= base()) throw new Error('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    if (!marks.length) throw new Error('no MARK to pop to');
    return stack.splice(marks.pop()!);
  };
  const put = (i: number) => {
    if (!memo.has(i) && memo.size >= MAX_MEMO) throw new Error(`memo exceeds ${MAX_MEMO} entries`);
    memo.set(i, top());
  };
  const get = (i: number) => {
    if (!memo.has(i)) throw new Error(`memo key ${i} was never stored`);
    push(memo.get(i));
  };
  const int = (n: bigint) => (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);
  const long = (n: number) => {
    if (n > MAX_LONG_BYTES) throw new Error(`integer of ${n} bytes is over the ${MAX_LONG_BYTES}-byte limit`);
    const b = bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return int(v);
  };
  const dict = (target: unknown): Map<unknown, unknown> => {
    if (!(target instanceof Map)) throw new Error(`SETITEM target is a ${kind(target)}, not a dict`);
    return target;
  };
  const list = (target: unknown): unknown[] => {
    if (!Array.isArray(target)) throw new Error(`APPEND target is a ${kind(target)}, not a list`);
    return target;
  };
  const set = (target: unknown): Set<unknown> => {
    if (!(target instanceof Set)) throw new Error(`ADDITEMS target is a ${kind(target)}, not a set`);
    return target;
  };
  const pairs = (items: unknown[], target: Map<unknown, unknown>) => {
    if (items.length % 2) throw new Error('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const args = (v: unknown): unknown[] => {
    if (!Array.isArray(v)) throw new Error(`call arguments are a ${kind(v)}, not a tuple`);
    return v;
  };

  try {
    for (;;) {
      opPos = pos;
      op = -1;
      if (pos >= data.length) throw new Error('data ends without a STOP opcode (truncated)');
      op = u8();
      switch (op) {
        case 0x80: { // PROTO
          const proto = u8();
          if (proto > 5) throw new Error(`pickle protocol ${proto} is not supported (at most 5)`);
          break;
        }
        case 0x95: u64(); break; // FRAME: a read-ahead hint only
        case 0x2e: return pop(); // STOP
        case 0x28: // MARK
          if (marks.length >= MAX_MARK_DEPTH) throw new Error(`MARKs nest deeper than ${MAX_MARK_DEPTH}`);
          marks.push(stack.length);
          break;
        case 0x30: pop(); break; // POP
        case 0x31: popMark(); break; // POP_MARK
        case 0x32: push(top()); break; // DUP
        case 0x7d: made(new Map()); break; // EMPTY_DICT
        case 0x5d: made([]); break; // EMPTY_LIST
        case 0x29: made([]); break; // EMPTY_TUPLE
        case 0x8f: made(new Set()); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const items = popMark();
          const s = set(top());
          for (const x of items) s.add(x);
          break;
        }
        case 0x91: made(new Set(popMark())); break; // FROZENSET
        case 0x74: made(popMark()); break; // TUPLE
        case 0x85: made([pop()]); break; // TUPLE1
        case 0x86: { const b = pop(); made([pop(), b]); break; } // TUPLE2
        case 0x87: { const c = pop(); const b = pop(); made([pop(), b, c]); break; } // TUPLE3
        case 0x64: { const m = new Map(); pairs(popMark(), m); made(m); break; } // DICT
        case 0x6c: made(popMark()); break; // LIST
        case 0x73: { const v = pop(); const k = pop(); dict(top()).set(k, v); break; } // SETITEM
        case 0x75: { const items = popMark(); pairs(items, dict(top())); break; } // SETITEMS
        case 0x61: { const v = pop(); list(top()).push(v); break; } // APPEND
        case 0x65: { const items = popMark(); const l = list(top()); for (const x of items) l.push(x); break; } // APPENDS
        case 0x71: put(u8()); break; // BINPUT
        case 0x72: put(u32()); break; // LONG_BINPUT
        case 0x94: put(memo.size); break; // MEMOIZE
        case 0x68: get(u8()); break; // BINGET
        case 0x6a: get(u32()); break; // LONG_BINGET
        case 0x4a: push(view.getInt32(take(4), true)); break; // BININT
        case 0x4b: push(u8()); break; // BININT1
        case 0x4d: push(u16()); break; // BININT2
        case 0x8a: push(long(u8())); break; // LONG1
        case 0x8b: push(long(u32())); break; // LONG4
        case 0x47: push(view.getFloat64(take(8), false)); break; // BINFLOAT (big-endian)
        case 0x4e: push(null); break; // NONE
        case 0x88: push(true); break; // NEWTRUE
        case 0x89: push(false); break; // NEWFALSE
        case 0x58: push(text(u32())); break; // BINUNICODE
        case 0x8c: push(text(u8())); break; // SHORT_BINUNICODE
        case 0x8d: push(text(u64())); break; // BINUNICODE8
        case 0x43: push(bytes(u8()).slice()); break; // SHORT_BINBYTES
        case 0x42: push(bytes(u32()).slice()); break; // BINBYTES
        case 0x8e: case 0x96: push(bytes(u64()).slice()); break; // BINBYTES8, BYTEARRAY8
        case 0x63: { const module = line(); push(hooks.findGlobal(module, line())); break; } // GLOBAL
        case 0x93: { // STACK_GLOBAL
          const name = pop();
          const module = pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw new Error('STACK_GLOBAL needs two strings');
          push(hooks.findGlobal(module, name));
          break;
        }
        case 0x52: { const a = args(pop()); made(hooks.call(pop(), a)); break; } // REDUCE
        case 0x62: { const state = pop(); made(hooks.build(pop(), state)); break; } // BUILD
        case 0x81: { const a = args(pop()); made(hooks.newObject(pop(), a)); break; } // NEWOBJ
        case 0x92: { // NEWOBJ_EX
          const kwargs = pop();
          const a = args(pop());
          if (!(kwargs instanceof Map) || kwargs.size) throw new Error('NEWOBJ_EX with keyword arguments is not supported');
          made(hooks.newObject(pop(), a));
          break;
        }
        case 0x51: made(hooks.persistentLoad(pop())); break; // BINPERSID
        default:
          throw new Error(`unsupported opcode (a torch.save checkpoint never uses it)`);
      }
    }
  } catch (err) {
    const name = op < 0 ? 'none' : (NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`);
    throw new Error(`${what}: ${(err as Error).message} (opcode ${name} at byte ${opPos})`, { cause: err });
  }
}

/** @internal A short description of a value's type for error messages. */
export function kind(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'tuple/list';
  if (v instanceof Map) return 'dict';
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}
