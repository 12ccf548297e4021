// The planner's one error type. `code` lets the coordinator answer a device ("no lease: too small for this run") and
// the run-config check ("these settings leave parameters untrained") without parsing messages.
export type PlannerErrorCode = 'device-too-small' | 'coverage-gap' | 'invalid-config';

export class PlannerError extends Error {
  override readonly name = 'PlannerError';
  constructor(readonly code: PlannerErrorCode, message: string) {
    super(message);
  }
}
