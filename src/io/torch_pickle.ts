/**
 * Reader for PyTorch `.pth`/`.pt` state_dicts, without Python and without executing anything
 * from the file.
 *
 * - Zip format (PyTorch >= 1.6): `<name>/data.pkl` (the pickled object) and
 *   `<name>/data/<key>` (one raw little-endian storage per key), stored or deflated, ZIP64 ok.
 * - Legacy format (PyTorch < 1.6): pickled magic number, protocol version and sys_info, the
 *   object pickle, the list of storage keys, then each storage as an int64 element count
 *   followed by its raw bytes.
 *
 * The pickle machine (pickle.ts) resolves globals only through the allow-list below (tensor
 * rebuild functions, storage types, OrderedDict); any other global is an error, never an
 * import.
 *
 * @module
 */
import { AllowedGlobal, PickleError, unpickle } from "./pickle.ts";
import { halfToFloat } from "./safetensors.ts";
import { looksLikeZip, readZipDirectory, readZipEntry, type ZipEntry } from "./zip.ts";

/** One tensor of a state_dict, converted to float32 and made contiguous (C order). */
export interface TorchTensor {
  /** Dimensions. */
  shape: number[];
  /** The elements, row-major, as float32. */
  data: Float32Array;
}

type StorageDtype = "f32" | "f64" | "f16" | "bf16" | "i64" | "i32" | "i16" | "i8" | "u8" | "bool";

const STORAGE_TYPES: Record<string, [StorageDtype, number]> = {
  FloatStorage: ["f32", 4],
  DoubleStorage: ["f64", 8],
  HalfStorage: ["f16", 2],
  BFloat16Storage: ["bf16", 2],
  LongStorage: ["i64", 8],
  IntStorage: ["i32", 4],
  ShortStorage: ["i16", 2],
  CharStorage: ["i8", 1],
  ByteStorage: ["u8", 1],
  BoolStorage: ["bool", 1],
};

const ELEMENT_SIZE = Object.fromEntries(Object.values(STORAGE_TYPES)) as Record<
  StorageDtype,
  number
>;

/** A storage reference as found in a persistent id, resolved to float32 lazily. */
class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: StorageDtype,
    readonly elementSize: number,
    readonly numel: number,
    /** Legacy views: element offset into the root storage. */
    readonly viewOffset = 0,
  ) {}
}

/** A tensor as pickled: a strided view of a storage whose bytes may come later in the file. */
class TensorValue {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

class StorageType {
  constructor(readonly name: string, readonly dtype: StorageDtype, readonly elementSize: number) {}
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes a raw storage of any element type into float32 values. */
function storageToFloat32(
  bytes: Uint8Array,
  dtype: StorageDtype,
  littleEndian: boolean,
): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = ELEMENT_SIZE[dtype];
  const n = Math.floor(bytes.length / size);
  if (dtype === "f32" && littleEndian === HOST_IS_LITTLE_ENDIAN) {
    // Host and file agree: one aligned copy (legacy files put storages at any offset).
    return new Float32Array(bytes.slice(0, n * 4).buffer);
  }
  const out = new Float32Array(n);
  switch (dtype) {
    case "f32":
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, littleEndian);
      break;
    case "f64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, littleEndian);
      break;
    case "f16":
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, littleEndian));
      break;
    case "bf16": {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, littleEndian) << 16;
      break;
    }
    case "i64":
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(i * 8, littleEndian));
      break;
    case "i32":
      for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, littleEndian);
      break;
    case "i16":
      for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, littleEndian);
      break;
    case "i8":
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      break;
    case "u8":
    case "bool":
      for (let i = 0; i < n; i++) out[i] = bytes[i];
      break;
  }
  return out;
}

/** Loads a storage's values (as float32) by reference. */
type StorageLoader = (ref: StorageRef) => Float32Array;

/** Copies a strided view (`_rebuild_tensor_v2` arguments) into a contiguous array. */
function gatherStrided(
  storage: Float32Array,
  offset: number,
  shape: number[],
  stride: number[],
): Float32Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(numel);
  if (numel === 0) return out;
  let contiguous = true;
  for (let d = shape.length - 1, expected = 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) contiguous = false;
    expected *= shape[d];
  }
  let maxIndex = offset;
  for (let d = 0; d < shape.length; d++) maxIndex += (shape[d] - 1) * stride[d];
  if (offset < 0 || maxIndex >= storage.length) {
    throw new PickleError(
      `tensor of shape [${shape}] (offset ${offset}, stride [${stride}]) reaches past its ` +
        `storage of ${storage.length} elements`,
    );
  }
  if (contiguous) {
    out.set(storage.subarray(offset, offset + numel));
    return out;
  }
  const index = new Array(shape.length).fill(0);
  for (let i = 0; i < numel; i++) {
    let source = offset;
    for (let d = 0; d < shape.length; d++) source += index[d] * stride[d];
    out[i] = storage[source];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

function asIntList(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "number" || !Number.isInteger(v))) {
    throw new PickleError(`${what} is not a tuple of integers`);
  }
  return value as number[];
}

function rebuildTensor(args: unknown[]): TensorValue {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new PickleError("tensor without a storage");
  if (typeof offset !== "number") throw new PickleError("tensor storage offset is not an int");
  const shape = asIntList(size, "tensor size");
  const strides = asIntList(stride, "tensor stride");
  if (strides.length !== shape.length) {
    throw new PickleError("tensor size and stride differ in rank");
  }
  return new TensorValue(storage, offset, shape, strides);
}

/** The allow-list: every global a state_dict pickle may name. Nothing else is resolved. */
function resolveGlobal(module: string, name: string): unknown {
  const full = `${module}.${name}`;
  if (module === "torch" && name in STORAGE_TYPES) {
    const [dtype, size] = STORAGE_TYPES[name];
    return new StorageType(full, dtype, size);
  }
  switch (full) {
    case "collections.OrderedDict":
      return new AllowedGlobal(full, () => new Map());
    case "torch._utils._rebuild_tensor_v2":
    case "torch._utils._rebuild_tensor":
      return new AllowedGlobal(full, rebuildTensor);
    case "torch._utils._rebuild_parameter":
    case "torch._utils._rebuild_parameter_with_state":
      return new AllowedGlobal(full, (args) => {
        if (!(args[0] instanceof TensorValue)) throw new PickleError("parameter without a tensor");
        return args[0];
      });
    case "torch.Size":
      return new AllowedGlobal(full, (args) => args[0]);
  }
  throw new PickleError(
    `refusing pickle global ${full}: only tensors, storages and (Ordered)dicts are supported ` +
      `(save model.state_dict(), not the module or other Python objects)`,
  );
}

/** Parses a `('storage', StorageType, key, location, numel[, view_metadata])` persistent id. */
function storageFromPersistentId(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== "storage") {
    throw new PickleError(`unexpected persistent id ${JSON.stringify(String(pid))}`);
  }
  const [, type, key, , numel, viewMetadata] = pid;
  if (!(type instanceof StorageType)) throw new PickleError("persistent id without a storage type");
  if (typeof numel !== "number") throw new PickleError("storage size is not an int");
  const ref = new StorageRef(String(key), type.dtype, type.elementSize, numel);
  if (Array.isArray(viewMetadata)) {
    // Legacy storage views: (view_key, offset, view_size) into the root storage.
    return new StorageRef(ref.key, ref.dtype, ref.elementSize, numel, Number(viewMetadata[1]));
  }
  return ref;
}

/** Turns the unpickled object into the name -> tensor map. */
function collectStateDict(
  value: unknown,
  load: StorageLoader,
  depth = 0,
): Map<string, TorchTensor> {
  if (!(value instanceof Map)) {
    throw new PickleError("the file does not hold a dict (save model.state_dict())");
  }
  const tensors = new Map<string, TorchTensor>();
  for (const [key, item] of value) {
    if (item instanceof TensorValue) {
      const storage = load(item.storage);
      const offset = item.storage.viewOffset + item.offset;
      tensors.set(String(key), {
        shape: item.shape,
        data: gatherStrided(storage, offset, item.shape, item.stride),
      });
    }
  }
  if (tensors.size > 0) return tensors;
  // Training checkpoints often nest the weights: {"state_dict": {...}, "epoch": ...}.
  for (const nested of ["state_dict", "model_state_dict", "model", "ema", "net"]) {
    if (value.get(nested) instanceof Map && depth < 2) {
      return collectStateDict(value.get(nested), load, depth + 1);
    }
  }
  throw new PickleError(
    `the dict holds no tensors (keys: ${[...value.keys()].slice(0, 8).join(", ")})`,
  );
}

function parseZipFormat(bytes: Uint8Array, source: string): Map<string, TorchTensor> {
  const entries = readZipDirectory(bytes, source);
  const pickleEntry = entries.find((e) => e.name === "data.pkl" || e.name.endsWith("/data.pkl"));
  if (!pickleEntry) throw new PickleError("zip archive has no data.pkl (not a torch.save file)");
  const prefix = pickleEntry.name.slice(0, pickleEntry.name.length - "data.pkl".length);
  const byName = new Map<string, ZipEntry>(entries.map((e) => [e.name, e]));
  const byteorderEntry = byName.get(`${prefix}byteorder`);
  const littleEndian = !byteorderEntry ||
    new TextDecoder().decode(readZipEntry(bytes, byteorderEntry, source)).trim() === "little";
  const cache = new Map<string, Float32Array>();
  const load: StorageLoader = (ref) => {
    let data = cache.get(ref.key);
    if (!data) {
      const entry = byName.get(`${prefix}data/${ref.key}`);
      if (!entry) throw new PickleError(`storage ${ref.key} is missing from the archive`);
      const raw = readZipEntry(bytes, entry, source);
      if (raw.length < ref.numel * ref.elementSize) {
        throw new PickleError(
          `storage ${ref.key} has ${raw.length} bytes, expected ${ref.numel * ref.elementSize}`,
        );
      }
      data = storageToFloat32(
        raw.subarray(0, ref.numel * ref.elementSize),
        ref.dtype,
        littleEndian,
      );
      cache.set(ref.key, data);
    }
    return data;
  };
  const pickle = readZipEntry(bytes, pickleEntry, source);
  const { value } = unpickle(pickle, 0, storageFromPersistentId, resolveGlobal);
  return collectStateDict(value, load);
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function parseLegacyFormat(bytes: Uint8Array): Map<string, TorchTensor> {
  const noPid = () => {
    throw new PickleError("persistent id in a header pickle");
  };
  const magic = unpickle(bytes, 0, noPid, resolveGlobal);
  if (magic.value !== LEGACY_MAGIC) {
    throw new PickleError("no PyTorch magic number (not a torch.save file, or a corrupt one)");
  }
  const protocol = unpickle(bytes, magic.end, noPid, resolveGlobal);
  if (protocol.value !== 1001) {
    throw new PickleError(`legacy protocol version ${protocol.value} is not supported (want 1001)`);
  }
  const sysInfo = unpickle(bytes, protocol.end, noPid, resolveGlobal);
  const littleEndian = !(sysInfo.value instanceof Map) ||
    sysInfo.value.get("little_endian") !== false;
  const refs = new Map<string, StorageRef>();
  const object = unpickle(bytes, sysInfo.end, (pid) => {
    const ref = storageFromPersistentId(pid);
    refs.set(ref.key, ref);
    return ref;
  }, resolveGlobal);
  const keys = unpickle(bytes, object.end, noPid, resolveGlobal);
  if (!Array.isArray(keys.value)) throw new PickleError("storage key list missing");
  // Storage records follow in key order: int64 element count, then the raw elements.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const storages = new Map<string, Float32Array>();
  let p = keys.end;
  for (const key of keys.value) {
    const ref = refs.get(String(key));
    if (!ref) throw new PickleError(`storage ${key} is listed but never used`);
    if (p + 8 > bytes.length) throw new PickleError(`storage ${key} is missing (truncated file?)`);
    const numel = Number(view.getBigInt64(p, littleEndian));
    const end = p + 8 + numel * ref.elementSize;
    if (numel < 0 || end > bytes.length) {
      throw new PickleError(`storage ${key} runs past the end of the file (truncated file?)`);
    }
    storages.set(ref.key, storageToFloat32(bytes.subarray(p + 8, end), ref.dtype, littleEndian));
    p = end;
  }
  return collectStateDict(object.value, (ref) => {
    const data = storages.get(ref.key);
    if (!data) throw new PickleError(`storage ${ref.key} is missing`);
    return data;
  });
}

/**
 * Parses the bytes of a `torch.save`d state_dict (zip or legacy format) into float32 tensors.
 * `source` names the file in errors.
 *
 * @example
 * ```ts ignore needs-checkpoint
 * import { parseTorchStateDict } from "./torch_pickle.ts";
 * const weights = parseTorchStateDict(await Deno.readFile("unet.pt"), "unet.pt");
 * console.log(weights.get("inc.double_conv.0.weight")?.shape);
 * ```
 */
export function parseTorchStateDict(
  bytes: Uint8Array,
  source = "checkpoint",
): Map<string, TorchTensor> {
  try {
    if (looksLikeZip(bytes)) return parseZipFormat(bytes, source);
    if (bytes.length > 0 && bytes[0] === 0x80) return parseLegacyFormat(bytes);
    throw new PickleError("neither a zip archive nor a pickle");
  } catch (error) {
    if (error instanceof PickleError) {
      throw new Error(`${source}: cannot read as a PyTorch state_dict: ${error.message}`);
    }
    throw error;
  }
}

/**
 * Reads a `.pth`/`.pt` state_dict file into float32 tensors by parameter name.
 *
 * @example
 * ```ts ignore needs-weights
 * import { readTorchStateDict } from "./torch_pickle.ts";
 * const weights = await readTorchStateDict("pt_inception-2015-12-05-6726825d.pth");
 * console.log(weights.get("Conv2d_1a_3x3.conv.weight")?.shape); // [32, 3, 3, 3]
 * ```
 */
export async function readTorchStateDict(path: string): Promise<Map<string, TorchTensor>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read PyTorch checkpoint ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return parseTorchStateDict(bytes, path);
}
