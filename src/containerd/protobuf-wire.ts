/**
 * The few pieces of protobuf's wire format the hand-encoded calls need
 * (bare-call.ts: made before grpc-js is loaded): writing a string field,
 * and walking a message's fields. Not a protobuf library.
 */

/** A length-delimited field (wire type 2) holding text. */
export function stringField(number: number, text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A malformed answer: the introspection message (the one decoded here) could not be read. */
export class ProtobufDecodeError extends Error {
  constructor(message: string) {
    super(`containerd's plugin list could not be read: ${message}`);
    this.name = 'ProtobufDecodeError';
  }
}

export interface Field {
  number: number;
  /** The payload of a length-delimited field; undefined for the other wire types (skipped). */
  bytes: Buffer | undefined;
}

export function* fields(message: Buffer): Generator<Field> {
  let at = 0;
  const readVarint = (): number => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (at >= message.length) throw new ProtobufDecodeError('a varint runs past the end');
      const byte = message[at++] as number;
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return result;
      scale *= 128;
      if (scale > 2 ** 63) throw new ProtobufDecodeError('a varint is too long');
    }
  };
  while (at < message.length) {
    const key = readVarint();
    const number = Math.floor(key / 8);
    switch (key & 7) {
      case 0:
        readVarint();
        yield { number, bytes: undefined };
        break;
      case 1:
        at += 8;
        yield { number, bytes: undefined };
        break;
      case 2: {
        const length = readVarint();
        if (at + length > message.length) throw new ProtobufDecodeError(`field ${number} runs past the end`);
        const bytes = message.subarray(at, at + length);
        at += length;
        yield { number, bytes };
        break;
      }
      case 5:
        at += 4;
        yield { number, bytes: undefined };
        break;
      default:
        throw new ProtobufDecodeError(`field ${number} has wire type ${key & 7}`);
    }
  }
  if (at > message.length) throw new ProtobufDecodeError('a fixed-width field runs past the end');
}
