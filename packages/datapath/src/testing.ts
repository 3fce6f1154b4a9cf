// @membrane/datapath/testing: what the datapath's tests use and a user's tests may too. Not part
// of the main entry, so an agent that loads programs does not carry a packet builder.
export type { PacketSpec, PacketSpec6, ParsedPacket } from './packet'
export {
  buildPacket,
  buildPacket6,
  fragmentPacket,
  inetChecksum,
  parsePacket,
  parsePacket6,
  reassemblePacket,
  skbContext,
  TcpFlags,
} from './packet'
