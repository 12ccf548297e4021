// Reads a request body up to a byte limit, refusing early on a declared Content-Length and while streaming
// otherwise, so an oversized upload costs the server at most `limit` bytes of memory.
import { ProtocolError } from '../../core/protocol/errors.ts';

export async function readBodyLimited(req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    throw new ProtocolError('payload_too_large', `body of ${declared} bytes exceeds the limit of ${limit}`);
  }
  if (req.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel();
        throw new ProtocolError('payload_too_large', `body exceeds the limit of ${limit} bytes`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('bad_request', `the request body was cut off: ${String(e)}`);
  }
  if (declared !== null && total !== Number(declared)) {
    throw new ProtocolError('bad_request', `the request body was cut off: ${total} of ${declared} bytes arrived`);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Parses a JSON body of at most `limit` bytes; malformed JSON is a bad_request. */
export async function readJsonLimited(req: Request, limit = 64 * 1024): Promise<unknown> {
  const bytes = await readBodyLimited(req, limit);
  if (bytes.length === 0) return {};
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ProtocolError('bad_request', `the body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}
