// @ringzero/vswitch: an Open vSwitch-style virtual switch (isomorphic core).
export { Bridge, Mirror, FC_ADD, FC_MODIFY, FC_MODIFY_STRICT, FC_DELETE, FC_DELETE_STRICT } from './bridge.js';
export type { BridgeOptions, BridgeStats, MirrorOptions, PacketIn } from './bridge.js';
export { Port } from './port.js';
export type { FrameSink, PortOptions, PortStats, PortType, VlanMode } from './port.js';
export { MacTable } from './mac-table.js';
export type { MacEntry } from './mac-table.js';
export { Flow } from './flow.js';
export type { Action, FlowSpec, Instructions, LearnSpec } from './flow.js';
export { FlowSyntaxError, parseFlow, formatFlowStats, formatMatch, formatInstructions } from './flow-text.js';
export * from './consts.js';
export { VxlanTunnel, VxlanPort, VXLAN_PORT, parseIpv4, formatIpv4 } from './vxlan.js';
export type { UdpTransport, VxlanPortOptions, VxlanFdbEntry } from './vxlan.js';
export { OpenFlowConnection, OfError } from './openflow.js';
export type { OpenFlowConnectionOptions } from './openflow.js';
