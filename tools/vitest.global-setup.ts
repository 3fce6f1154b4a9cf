import { sweepLeftovers } from '@membrane/test-utils'

/**
 * Runs once before the test run: removes namespaces, interfaces, pins and etcd servers left by
 * test processes that crashed in an earlier run (their owner pid is gone). Objects of test
 * runs still alive in other processes are untouched.
 */
export default function setup(): void {
  const report = sweepLeftovers()
  const total =
    report.namespaces.length + report.links.length + report.pinDirs.length + report.processes.length
  if (total > 0) {
    process.stderr.write(
      `membrane: swept leftovers of crashed test runs: ${JSON.stringify(report)}\n`,
    )
  }
}
