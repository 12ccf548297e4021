// Test-only fault injection: kill -9 the coordinator at a named point of its durability path, so crash tests land
// the kill exactly where it hurts instead of hoping a random kill does. Inert unless TESSERA_FAULT is set:
//
//   TESSERA_FAULT=crash-after:<point>[:<n>]   SIGKILL this process the n-th time (default 1st) it passes <point>
//
// The points (docs/security.md, "Fault injection"), in the order an update meets them:
//   mid-blob-write        FileBlobStore.put has written half of a blob's bytes to its temp file (any blob)
//   after-update-blob     an upload's blob is durable, the update not yet recorded (no 202 sent)
//   after-update-accept   the update is recorded (the acknowledgement point), the 202 not yet sent
//   after-secure-sum-accept  a secure round's sum is recorded (its acknowledgement point), not yet folded
//   after-version-blob    a new version's weights blob is durable, its state blob and row not yet written
//   before-version-commit every blob of a new version is durable, the SQLite transaction not yet run
//   after-version-commit  the version is committed, the folded updates' blobs not yet deleted
// The environment is read once, at import: a production process without the variable pays one comparison per point.
export const FAULT_POINTS = [
  'mid-blob-write', 'after-update-blob', 'after-update-accept', 'after-secure-sum-accept', 'after-version-blob', 'before-version-commit', 'after-version-commit',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

const armed = parseFault(process.env.TESSERA_FAULT);
let passes = 0;

/** Parses a TESSERA_FAULT value; throws on a malformed one so a typo cannot silently disarm a crash test. */
export function parseFault(spec: string | undefined): { point: FaultPoint; nth: number } | undefined {
  if (spec === undefined || spec === '') return undefined;
  const m = /^crash-after:([a-z-]+)(?::(\d+))?$/.exec(spec);
  const point = m?.[1] as FaultPoint | undefined;
  const nth = Number(m?.[2] ?? 1);
  if (point === undefined || !FAULT_POINTS.includes(point) || nth < 1) {
    throw new Error(`TESSERA_FAULT=${spec}: want crash-after:<point>[:<n>] with a point among ${FAULT_POINTS.join(', ')}`);
  }
  return { point, nth };
}

/**
 * Marks `point` passed; when it is the armed point's n-th pass, runs `before` (e.g. a half write) and kills the
 * process with SIGKILL: no exit handlers, no flushes, exactly what a power cut or the OOM killer does.
 */
export async function faultPoint(point: FaultPoint, before?: () => Promise<unknown>): Promise<void> {
  if (armed === undefined || armed.point !== point || ++passes !== armed.nth) return;
  await before?.();
  process.kill(process.pid, 'SIGKILL');
  await new Promise(() => {}); // the signal is delivered asynchronously: never carry on past the point
}
