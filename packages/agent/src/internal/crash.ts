/**
 * A test hook, and nothing else: when the environment variable `MEMBRANE_TEST_CRASH_AT` names one
 * of {@link CREATE_STEPS}, the agent process SIGKILLs itself as an endpoint create reaches that
 * step, so that tests can check that a restart leaves neither half-made kernel objects nor a
 * half-made endpoint after a crash at any step. Unset (always, outside those tests) it does nothing.
 */

/** The named steps of an endpoint create, in order. */
export const CREATE_STEPS = [
  /** The intent (the new endpoint's record) is in the state file; no kernel object yet. */
  'intent-saved',
  /** The endpoint has its identity and ipcache entry. */
  'identity-allocated',
  /** The namespace and the veth pair exist; the workload side is not configured yet. */
  'namespace-made',
  /** The programs are attached and the endpoint's policy map is filled. */
  'attached',
  /** Every endpoint's policy has been updated for the new one; the commit is not written yet. */
  'policy-applied',
] as const

/** One of {@link CREATE_STEPS}. */
export type CreateStep = (typeof CREATE_STEPS)[number]

/** The environment variable of the hook. */
export const CRASH_ENV = 'MEMBRANE_TEST_CRASH_AT'

/** Die at once (no cleanup code runs, like `kill -9`) when the hook names `step`. */
export function crashPoint(step: CreateStep): void {
  if (process.env[CRASH_ENV] === step) process.kill(process.pid, 'SIGKILL')
}
