// npm start -w @membrane/example-maglev-explorer -- [backends] [tableSize] [heavyWeight] [remove]
import { explore } from './explore'

const [backends = '10', tableSize = '16381', heavyWeight = '5', remove = '3'] =
  process.argv.slice(2)
for (const line of explore({
  backends: Number(backends),
  tableSize: Number(tableSize),
  heavyWeight: Number(heavyWeight),
  remove: Number(remove),
}).lines)
  console.log(line)
