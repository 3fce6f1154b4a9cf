import { DatapathError, DatapathErrorCode, describeValue } from '../errors'

const MAC = /^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$/

/** Write a MAC address (aa:bb:cc:dd:ee:ff). */
export function writeMac(buf: Buffer, offset: number, value: unknown, path: string): void {
  if (typeof value !== 'string' || !MAC.test(value))
    throw new DatapathError(
      DatapathErrorCode.INVALID_VALUE,
      `expected a MAC address (aa:bb:cc:dd:ee:ff), got ${describeValue(value)}`,
      { path },
    )
  const parts = value.split(':')
  for (let i = 0; i < 6; i++) buf[offset + i] = Number.parseInt(parts[i] as string, 16)
}

/** Read a MAC address. */
export function readMac(buf: Buffer, offset: number): string {
  const out: string[] = []
  for (let i = 0; i < 6; i++) out.push((buf[offset + i] as number).toString(16).padStart(2, '0'))
  return out.join(':')
}
