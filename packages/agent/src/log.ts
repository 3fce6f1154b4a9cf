import { type Logger, pino } from 'pino'

export type { Logger }

/** The agent's structured logger (pino, JSON lines on stderr so stdout stays for commands). */
export function createLogger(level: string, destination: number = 2): Logger {
  return pino({ level, base: { component: 'membrane-agent' } }, pino.destination(destination))
}
