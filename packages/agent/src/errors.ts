/**
 * Stable error codes of the agent. Every error the API returns carries one of these, so the CLI
 * and other clients can react to the kind of failure without parsing messages.
 */
export const AgentErrorCode = {
  /** The input (a flag, a request body, a file) is malformed; `field` names what was wrong. */
  INVALID_INPUT: 'INVALID_INPUT',
  /** The named object (endpoint, policy, service) does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** The object exists already with a different spec, or a name/address is taken. */
  CONFLICT: 'CONFLICT',
  /** A resource pool (addresses, endpoint ids) is exhausted. */
  EXHAUSTED: 'EXHAUSTED',
  /**
   * The input is over a limit of the agent: a request body over 4 MiB, or policy text whose
   * parsing needed more time or memory than allowed. The message names the limit.
   */
  TOO_LARGE: 'TOO_LARGE',
  /** A component is not available on this node (no datapath, no proxy, missing kernel feature). */
  UNAVAILABLE: 'UNAVAILABLE',
  /** The request carries no valid credentials (the metrics/UI listener's token). */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The caller is not allowed to use the API. */
  FORBIDDEN: 'FORBIDDEN',
  /** The agent failed while talking to the kernel or a component; `cause` has details. */
  INTERNAL: 'INTERNAL',
} as const

export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode]

const httpStatus: Record<AgentErrorCode, number> = {
  INVALID_INPUT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  EXHAUSTED: 507,
  TOO_LARGE: 413,
  UNAVAILABLE: 503,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  INTERNAL: 500,
}

/** An error of the agent, the API or the CLI, with a stable {@link AgentErrorCode}. */
export class AgentError extends Error {
  readonly code: AgentErrorCode
  /** The input field at fault (`labels`, `spec.ports[0].port`, `--ipam-pool`), when known. */
  readonly field: string | undefined

  constructor(
    code: AgentErrorCode,
    message: string,
    options: { field?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AgentError'
    this.code = code
    this.field = options.field
  }

  /** The HTTP status the API answers this error with. */
  get status(): number {
    return httpStatus[this.code]
  }

  /** The JSON body the API sends for this error. */
  toJSON(): { error: { code: AgentErrorCode; message: string; field?: string } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.field === undefined ? {} : { field: this.field }),
      },
    }
  }
}

/** Shorthand for an INVALID_INPUT error naming the field and what was expected. */
export function invalid(field: string, message: string): AgentError {
  return new AgentError('INVALID_INPUT', `${field}: ${message}`, { field })
}
