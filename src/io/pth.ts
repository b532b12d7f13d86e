// PyTorch checkpoints as torch.save writes them since 1.6: a zip holding <prefix>/data.pkl (the
// pickled object), <prefix>/data/<key> (one file of raw little-endian bytes per storage) and
// sometimes <prefix>/byteorder. The pickle runs through the restricted unpickler with the same
// allow-list idea as torch.load(weights_only=True): tensors, storages and plain containers only.
import { type DType, itemSize } from '../engine/dtype.js';
import { Tensor, callOp } from '../engine/tensor.js';
import { kind, unpickle, type UnpickleHooks } from './pickle.js';
import { INPUT_LIMITS, formatCount } from './read.js';
import { type ByteSource, bufferSource, checkHostEndianness, fileSource, ioError } from './source.js';
import { type ZipEntry, ZipError, ZipReader } from './zip.js';

/** A global the unpickler may reference: a callable below, or a storage type. */
class PyGlobal {
  constructor(readonly qualname: string, readonly dtype?: DType) {}
}

const STORAGE_TYPES: Record<string, DType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8',
  BoolStorage: 'bool', UntypedStorage: 'uint8',
};
const CALLABLES = new Set([
  'collections.OrderedDict', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state', 'torch.Size',
  'builtins.set', 'builtins.frozenset', '_codecs.encode',
]);
/** Protocol 2 pickles name Python 3 modules by their Python 2 names. */
const MODULE_ALIASES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };
const MAX_DIMS = 64;
/** data.pkl holds structure, not tensor data: even huge models need a few MB. */
const MAX_PICKLE_BYTES = 256 << 20;
/** <prefix>/byteorder holds 'little' or 'big'. */
const MAX_BYTEORDER_BYTES = 64;

const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Unpickles one archive; tracks every tensor it creates so none leaks on error. */
class PthLoader implements UnpickleHooks {
  readonly #zip: ZipReader;
  readonly #name: string;
  readonly #prefix: string;
  readonly #storages = new Map<string, Tensor>();
  readonly #isStorage = new Set<Tensor>();
  readonly #created: Tensor[] = [];
  #views = 0;

  constructor(zip: ZipReader, name: string, prefix: string) {
    this.#zip = zip;
    this.#name = name;
    this.#prefix = prefix;
  }

  run(pickle: Uint8Array): unknown {
    try {
      const result = unpickle(pickle, this, `${this.#name}: ${this.#prefix}/data.pkl`);
      // Storages are bases of the views handed out; their own handles are only kept when the
      // checkpoint holds a bare storage (views keep the memory alive without them). A tensor
      // the pickle built and then dropped (popped, overwritten) is freed too.
      const reachable = collectTensors(result);
      for (const t of this.#created) if (!reachable.has(t)) t.dispose();
      return result;
    } catch (err) {
      for (const t of this.#created) t.dispose();
      // An archive error met while reading a storage names the file and entry itself: the
      // pickle's position would only repeat the file's name.
      const cause = (err as { cause?: unknown }).cause;
      throw cause instanceof ZipError ? cause : err;
    }
  }

  findGlobal(module: string, name: string): unknown {
    const qualname = `${MODULE_ALIASES[module] ?? module}.${name}`;
    if ((module === 'torch' || module === 'torch.storage') && Object.hasOwn(STORAGE_TYPES, name)) {
      return new PyGlobal(qualname, STORAGE_TYPES[name]);
    }
    if (CALLABLES.has(qualname)) return new PyGlobal(qualname);
    if (module === 'torch' && name.endsWith('Storage')) {
      throw new Error(`storage type ${qualname} is not supported (deltatune reads ${Object.keys(STORAGE_TYPES).join(', ')})`);
    }
    throw new Error(
      `refused to load the global ${qualname}: a checkpoint may only hold tensors and plain containers ` +
        '(running arbitrary Python from a pickle is how malicious checkpoints attack). If you trust the file, ' +
        'load it in Python and re-save the state dict alone, e.g. with torch.save(model.state_dict(), path)',
    );
  }

  call(fn: unknown, args: unknown[]): unknown {
    if (!(fn instanceof PyGlobal) || fn.dtype) throw new Error(`cannot call a ${fn instanceof PyGlobal ? fn.qualname : kind(fn)}`);
    const arg = (i: number) => args[i];
    switch (fn.qualname) {
      case 'collections.OrderedDict': {
        const m = new Map<unknown, unknown>();
        for (const pair of args.length ? iterable(arg(0), fn.qualname) : []) {
          if (!Array.isArray(pair) || pair.length !== 2) throw new Error('OrderedDict items must be (key, value) pairs');
          m.set(pair[0], pair[1]);
        }
        return m;
      }
      case 'builtins.set': case 'builtins.frozenset':
        return new Set(args.length ? iterable(arg(0), fn.qualname) : []);
      case 'torch.Size':
        return [...ints(arg(0), 'torch.Size')];
      case '_codecs.encode':
        return encode(arg(0), arg(1));
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2': {
        const v2 = fn.qualname.endsWith('v2');
        if (args.length !== (v2 ? 6 : 4) && !(v2 && args.length === 7)) throw new Error(`${fn.qualname} takes ${v2 ? '6 or 7' : '4'} arguments, got ${args.length}`);
        return this.#rebuildTensor(arg(0), arg(1), arg(2), arg(3), v2 && arg(4) === true);
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state': {
        const data = arg(0);
        if (!(data instanceof Tensor) || typeof arg(1) !== 'boolean') throw new Error(`${fn.qualname} expects (tensor, requires_grad, ...)`);
        // Parameter attributes (the state) have no meaning outside the Python module.
        data.requiresGrad = arg(1) as boolean;
        return data;
      }
    }
    throw new Error(`cannot call ${fn.qualname}`);
  }

  newObject(cls: unknown, _args: unknown[]): unknown {
    const q = cls instanceof PyGlobal ? cls.qualname : kind(cls);
    if (q === 'collections.OrderedDict') return new Map();
    if (q === 'builtins.set' || q === 'builtins.frozenset') return new Set();
    throw new Error(`cannot create a ${q} object`);
  }

  build(obj: unknown, state: unknown): unknown {
    // torch.save pickles a state dict's `_metadata` attribute (module versions) this way; it
    // only matters to Python's load_state_dict hooks, so the state is validated and dropped.
    if (obj instanceof Map && (state === null || state instanceof Map || Array.isArray(state))) return obj;
    throw new Error(`cannot set the state of a ${kind(obj)} from a ${kind(state)}`);
  }

  // pid = ('storage', storage_type, key, location, numel)
  persistentLoad(pid: unknown): unknown {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new Error('persistent id is not a (\'storage\', type, key, location, numel) tuple');
    const [, type, key, location, numel] = pid as [string, unknown, unknown, unknown, unknown];
    if (!(type instanceof PyGlobal) || !type.dtype || typeof key !== 'string' || typeof location !== 'string' || !isInt(numel)) {
      throw new Error(`persistent id for storage ${JSON.stringify(key)} is malformed`);
    }
    const cached = this.#storages.get(key);
    if (cached) {
      if (cached.dtype !== type.dtype) throw new Error(`storage '${key}' is used as both ${cached.dtype} and ${type.dtype}`);
      return cached;
    }
    if (this.#storages.size >= INPUT_LIMITS.tensors) {
      throw new Error(`the checkpoint has more than ${formatCount(INPUT_LIMITS.tensors)} storages, the limit for one weights file (INPUT_LIMITS.tensors)`);
    }
    const path = `${this.#prefix}/data/${key}`;
    const entry = this.#zip.entries.get(path);
    if (!entry) throw new Error(`storage '${key}' is missing (no ${path} in the archive)`);
    const nbytes = numel * itemSize(type.dtype);
    if (entry.size !== nbytes) throw new Error(`storage '${key}' holds ${entry.size} bytes, but ${numel} ${type.dtype} elements need ${nbytes}`);
    // Checked before the entry is read: a deflated entry's declared size is thus known to be
    // the storage's before it is inflated (within the zip reader's limits).
    // Read once, copied once into libtorch; location ('cuda:0', ...) is ignored: loads go to the CPU.
    const t = this.#zip.readTensor(entry, type.dtype, [numel], `storage '${key}'`);
    this.#created.push(t);
    this.#storages.set(key, t);
    this.#isStorage.add(t);
    return t;
  }

  // Validated before as_strided sees it: libtorch would read outside the storage otherwise.
  #rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown, requiresGrad: boolean): Tensor {
    if (!(storage instanceof Tensor) || !this.#isStorage.has(storage)) throw new Error('a tensor must be rebuilt from a storage');
    if (++this.#views > INPUT_LIMITS.tensors) {
      throw new Error(`the checkpoint has more than ${formatCount(INPUT_LIMITS.tensors)} tensors, the limit for one weights file (INPUT_LIMITS.tensors)`);
    }
    const sizes = ints(size, 'size');
    const strides = ints(stride, 'stride');
    if (!isInt(offset)) throw new Error(`storage offset must be a non-negative integer, got ${String(offset)}`);
    if (sizes.length !== strides.length || sizes.length > MAX_DIMS) throw new Error(`size [${sizes}] and stride [${strides}] do not match`);
    const available = BigInt(storage.numel);
    let last = BigInt(offset);
    for (let i = 0; i < sizes.length; i++) last += BigInt(Math.max(sizes[i]! - 1, 0)) * BigInt(strides[i]!);
    const empty = sizes.includes(0);
    if (empty ? BigInt(offset) > available : last >= available) {
      throw new Error(`tensor of size [${sizes}], stride [${strides}] at offset ${offset} does not fit in its storage of ${available} elements`);
    }
    const t = callOp('aten::as_strided', [storage, sizes, strides, offset]) as Tensor;
    this.#created.push(t);
    if (requiresGrad) t.requiresGrad = true;
    return t;
  }
}

function iterable(v: unknown, what: string): Iterable<unknown> {
  if (Array.isArray(v) || v instanceof Set) return v;
  throw new Error(`${what} expects a list or tuple, got a ${kind(v)}`);
}

function ints(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isInt)) throw new Error(`${what} must be a tuple of non-negative integers`);
  return v as number[];
}

// Protocol 2 has no bytes opcode: Python pickles bytes as _codecs.encode(str, 'latin1').
function encode(s: unknown, encoding: unknown): Uint8Array {
  if (typeof s !== 'string') throw new Error('_codecs.encode expects a string');
  if (encoding === 'latin1' || encoding === 'latin-1' || encoding === 'iso-8859-1') {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 255) throw new Error('_codecs.encode: character outside latin1');
      out[i] = c;
    }
    return out;
  }
  if (encoding === 'utf-8' || encoding === 'utf8') return new TextEncoder().encode(s);
  throw new Error(`_codecs.encode: encoding ${JSON.stringify(encoding)} is not supported`);
}

/** @internal Every Tensor reachable from an unpickled value (cycle-safe, iterative). */
export function collectTensors(root: unknown): Set<Tensor> {
  const found = new Set<Tensor>();
  const seen = new Set<unknown>();
  const pending = [root];
  while (pending.length) {
    const v = pending.pop();
    if (v instanceof Tensor) found.add(v);
    else if (typeof v === 'object' && v !== null && !seen.has(v)) {
      seen.add(v);
      if (v instanceof Map) for (const [k, x] of v) pending.push(k, x);
      else if (Array.isArray(v) || v instanceof Set) for (const x of v) pending.push(x);
    }
  }
  return found;
}

function readPth(src: ByteSource): unknown {
  checkHostEndianness(src.name);
  const magic = src.readAt(0, Math.min(4, src.size));
  if (magic[0] === 0x80) {
    throw ioError(
      src.name,
      'is a legacy (non-zip) PyTorch checkpoint, written by torch < 1.6 or with _use_new_zipfile_serialization=False; ' +
        'deltatune does not read that format. Load it in Python and re-save it with a current torch.save (or as safetensors)',
    );
  }
  if (magic.length < 4 || magic[0] !== 0x50 || magic[1] !== 0x4b) throw ioError(src.name, 'is not a PyTorch checkpoint (not a zip archive)');
  const zip = new ZipReader(src);
  const pickles = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) throw ioError(src.name, `is not a torch.save archive: expected one <prefix>/data.pkl, found ${pickles.length}`);
  const prefix = pickles[0]!.slice(0, -'/data.pkl'.length);
  if (zip.entries.has(`${prefix}/constants.pkl`)) {
    throw ioError(src.name, 'is a TorchScript archive (torch.jit.save); load it in Python and torch.save its state_dict() instead');
  }
  const byteorder = zip.entries.get(`${prefix}/byteorder`);
  if (byteorder) {
    const order = Buffer.from(readSmall(zip, byteorder, src.name, MAX_BYTEORDER_BYTES)).toString('latin1').trim();
    if (order !== 'little') throw ioError(src.name, `stores tensors in ${JSON.stringify(order)}-endian byte order; deltatune reads only little-endian checkpoints`);
  }
  const pickle = zip.entries.get(pickles[0]!)!;
  return new PthLoader(zip, src.name, prefix).run(readSmall(zip, pickle, src.name, MAX_PICKLE_BYTES));
}

/** An entry that is not tensor data, refused by its declared size before it is read or inflated. */
function readSmall(zip: ZipReader, e: ZipEntry, name: string, maxBytes: number): Uint8Array {
  if (e.size > maxBytes) throw ioError(name, `${e.name} is ${formatCount(e.size)} bytes, more than the limit of ${formatCount(maxBytes)} bytes for it`);
  return zip.read(e);
}

/**
 * Reads a PyTorch checkpoint written by `torch.save` (the zip format, PyTorch ≥ 1.6) without
 * running any Python: dicts become `Map`s, lists and tuples arrays, sets `Set`s, bytes
 * `Uint8Array`s, ints numbers (bigints beyond 2^53), tensors `Tensor`s. Tensors sharing a
 * storage in the file share memory here too; each storage is read once, one at a time. Only
 * tensors, storages, OrderedDict, torch.Size, set and bytes may appear: any other global
 * (`os.system`, a model class, numpy) is refused with an Error naming it and the file.
 */
export function loadPth(path: string): unknown {
  const src = fileSource(path);
  try {
    return readPth(src);
  } finally {
    src.close();
  }
}

/** `loadPth` for bytes already in memory; errors name '<buffer>'. */
export function parsePth(bytes: Uint8Array): unknown {
  return readPth(bufferSource(bytes));
}
