/**
 * A pickle reader for the opcode subset that `torch.save` emits for state_dicts: protocols
 * 2-5, plus the text forms of INT/LONG/GET/PUT/PERSID (opcodes as listed in CPython's
 * Lib/pickletools.py). It never imports or calls anything from the file: globals go through a
 * caller-supplied resolver, and only {@link AllowedGlobal} values may be called (REDUCE,
 * NEWOBJ).
 *
 * Python values map to: dict -> Map, list/tuple/set -> Array, str -> string, bytes ->
 * Uint8Array, int -> number (bigint past 2^53), float -> number, None -> null.
 *
 * @module
 */

/** A corrupt or unsupported pickle. */
export class PickleError extends Error {}

/** A resolved, allowed global: a callable that builds a value from its arguments. */
export class AllowedGlobal {
  constructor(readonly name: string, readonly call: (args: unknown[]) => unknown) {}
}

/**
 * Runs the pickle program that starts at byte `start` and returns its result and the byte
 * after its STOP. `persistentLoad` turns persistent ids (torch storages) into values;
 * `resolveGlobal` maps `module.name` to a value or throws.
 *
 * @example
 * ```ts
 * import { unpickle } from "./pickle.ts";
 * // pickle.dumps([1, "a"], protocol=2)
 * const bytes = new Uint8Array([0x80, 2, 0x5d, 0x71, 0, 0x28, 0x4b, 1, 0x58, 1, 0, 0, 0, 0x61,
 *   0x71, 1, 0x65, 0x2e]);
 * const noGlobals = () => { throw new Error("no globals"); };
 * unpickle(bytes, 0, noGlobals, noGlobals).value; // [1, "a"]
 * ```
 */
export function unpickle(
  bytes: Uint8Array,
  start: number,
  persistentLoad: (pid: unknown) => unknown,
  resolveGlobal: (module: string, name: string) => unknown,
): { value: unknown; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = start;
  const need = (n: number) => {
    if (p + n > bytes.length) throw new PickleError("pickle data ends early (truncated file?)");
  };
  const u8 = () => (need(1), bytes[p++]);
  const u16 = () => (need(2), (p += 2), view.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), view.getUint32(p - 4, true));
  const i32 = () => (need(4), (p += 4), view.getInt32(p - 4, true));
  const take = (n: number) => (need(n), (p += n), bytes.subarray(p - n, p));
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw new PickleError("pickle data ends early (truncated file?)");
    const text = new TextDecoder().decode(bytes.subarray(p, end));
    p = end + 1;
    return text;
  };
  const pop = () => {
    if (stack.length === 0) throw new PickleError("pickle stack underflow (corrupt data)");
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw new PickleError("pickle stack underflow (corrupt data)");
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw new PickleError("pickle MARK missing (corrupt data)");
    return stack.splice(m);
  };
  const getMemo = (key: number) => {
    if (!memo.has(key)) throw new PickleError(`pickle memo key ${key} missing (corrupt data)`);
    return memo.get(key);
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof Map)) throw new PickleError("SETITEM on a non-dict");
    for (let i = 0; i + 1 < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list)) throw new PickleError("APPEND on a non-list");
    list.push(...items);
  };
  const call = (callable: unknown, args: unknown) => {
    if (!(callable instanceof AllowedGlobal)) throw new PickleError("REDUCE on a non-callable");
    if (!Array.isArray(args)) throw new PickleError("REDUCE arguments are not a tuple");
    return callable.call(args);
  };
  const bigToNumber = (b: Uint8Array) => {
    let value = 0n;
    for (let i = b.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(b[i]);
    if (b.length > 0 && b[b.length - 1] & 0x80) value -= 1n << BigInt(8 * b.length);
    return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  };

  while (true) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: // STOP
        return { value: pop(), end: p };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: // LONG1
        stack.push(bigToNumber(take(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(bigToNumber(take(u32())));
        break;
      case 0x49: { // INT (text)
        const text = line();
        stack.push(text === "01" ? true : text === "00" ? false : Number.parseInt(text, 10));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(Number.parseInt(line().replace(/L$/, ""), 10));
        break;
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(p, false));
        p += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(decoder.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decoder.decode(take(u8())));
        break;
      case 0x8d: { // BINUNICODE8
        need(8);
        const n = Number(view.getBigUint64(p, true));
        p += 8;
        stack.push(decoder.decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: { // DICT
        const dict = new Map();
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push([]);
        break;
      case 0x90: { // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x61: { // APPEND
        const item = pop();
        appendItems(top(), [item]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: { // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: // PUT (text)
        memo.set(Number.parseInt(line(), 10), top());
        break;
      case 0x68: // BINGET
        stack.push(getMemo(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(getMemo(u32()));
        break;
      case 0x67: // GET (text)
        stack.push(getMemo(Number.parseInt(line(), 10)));
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        stack.push(resolveGlobal(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          throw new PickleError("STACK_GLOBAL without strings");
        }
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: { // BUILD: state for an object; tensors/dicts need none we use
        pop();
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      case 0x50: // PERSID (text)
        stack.push(persistentLoad(line()));
        break;
      default:
        throw new PickleError(
          `unsupported pickle opcode 0x${op.toString(16)} at byte ${p - 1}`,
        );
    }
  }
}
