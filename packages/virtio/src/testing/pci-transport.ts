import { ISR_CONFIG, ISR_QUEUE } from '../constants';
import type { VirtioPci } from '../pci';
import * as P from '../pci';
import type { DriverTransport } from './driver';

interface Region {
  bar: number;
  offset: number;
  length: number;
}

/** What a driver finds by walking a virtio-pci function's capability list. */
export interface PciCaps {
  common: Region;
  notify: Region & { multiplier: number };
  isr: Region;
  device: Region | null;
  msix: { at: number; vectors: number; tableBar: number; tableOffset: number } | null;
}

/** Walks the capability list in config space as a guest driver does (Linux virtio_pci_modern). */
export function findPciCaps(fn: VirtioPci): PciCaps {
  const r8 = (o: number): number => fn.configRead(o, 1);
  const r32 = (o: number): number => fn.configRead(o, 4);
  if ((fn.configRead(0x06, 2) & 0x10) === 0) throw new Error('no capability list');
  const found = new Map<number, Region & { at: number }>();
  let msix: PciCaps['msix'] = null;
  let at = r8(0x34);
  for (let guard = 0; at !== 0 && guard < 48; guard++) {
    const id = r8(at);
    if (id === 0x11) {
      const tbl = r32(at + 4);
      msix = { at, vectors: (fn.configRead(at + 2, 2) & 0x7ff) + 1, tableBar: tbl & 7, tableOffset: tbl & ~7 };
    } else if (id === 0x09) {
      const type = r8(at + 3);
      if (!found.has(type)) found.set(type, { at, bar: r8(at + 4), offset: r32(at + 8), length: r32(at + 12) });
    }
    at = r8(at + 1);
  }
  const need = (t: number): Region & { at: number } => {
    const c = found.get(t);
    if (c === undefined) throw new Error(`virtio-pci capability ${t} missing`);
    return c;
  };
  const notify = need(P.PCI_CAP_NOTIFY_CFG);
  return {
    common: need(P.PCI_CAP_COMMON_CFG),
    notify: { ...notify, multiplier: r32(notify.at + 16) },
    isr: need(P.PCI_CAP_ISR_CFG),
    device: found.get(P.PCI_CAP_DEVICE_CFG) ?? null,
    msix,
  };
}

/**
 * A DriverTransport over the modern virtio-pci interface, found through the capabilities.
 * With `msix`, enables MSI-X and programs vector v's message as (0xfee00000, 0, 0x40 + v).
 */
export function pciDriverTransport(fn: VirtioPci, opts: { msix?: boolean } = {}): DriverTransport {
  const caps = findPciCaps(fn);
  const c = caps.common;
  const cr = (o: number, s: number): number => fn.barRead(c.bar, c.offset + o, s);
  const cw = (o: number, s: number, v: number): void => fn.barWrite(c.bar, c.offset + o, s, v);
  fn.configWrite(0x04, 2, 0x0006); // memory + bus master
  if (opts.msix === true && caps.msix != null) {
    const m = caps.msix;
    for (let v = 0; v < m.vectors; v++) {
      const e = m.tableOffset + 16 * v;
      fn.barWrite(m.tableBar, e, 4, 0xfee0_0000);
      fn.barWrite(m.tableBar, e + 4, 4, 0);
      fn.barWrite(m.tableBar, e + 8, 4, 0x40 + v);
      fn.barWrite(m.tableBar, e + 12, 4, 0);
    }
    fn.configWrite(m.at + 2, 2, 0x8000);
  }
  const useMsix = opts.msix === true;
  const t: DriverTransport = {
    deviceId: fn.configRead(0x02, 2) >= P.PCI_DEVICE_MODERN_BASE ? fn.configRead(0x02, 2) - P.PCI_DEVICE_MODERN_BASE : fn.configRead(0x2e, 2),
    readDeviceFeatures(sel) {
      cw(P.COMMON_DFSELECT, 4, sel);
      return cr(P.COMMON_DF, 4);
    },
    writeDriverFeatures(sel, v) {
      cw(P.COMMON_GFSELECT, 4, sel);
      cw(P.COMMON_GF, 4, v);
    },
    getStatus: () => cr(P.COMMON_STATUS, 1),
    setStatus(v) {
      cw(P.COMMON_STATUS, 1, v);
      if (v === 0 && useMsix) cw(P.COMMON_MSIX, 2, 0);
    },
    selectQueue: (i) => cw(P.COMMON_Q_SELECT, 2, i),
    queueMaxSize: () => cr(P.COMMON_Q_SIZE, 2),
    setQueueSize: (n) => cw(P.COMMON_Q_SIZE, 2, n),
    setQueueAddresses(desc, driver, device) {
      cw(P.COMMON_Q_DESCLO, 4, desc >>> 0);
      cw(P.COMMON_Q_DESCHI, 4, Math.floor(desc / 2 ** 32));
      cw(P.COMMON_Q_AVAILLO, 4, driver >>> 0);
      cw(P.COMMON_Q_AVAILHI, 4, Math.floor(driver / 2 ** 32));
      cw(P.COMMON_Q_USEDLO, 4, device >>> 0);
      cw(P.COMMON_Q_USEDHI, 4, Math.floor(device / 2 ** 32));
    },
    enableQueue: () => cw(P.COMMON_Q_ENABLE, 2, 1),
    queueEnabled: () => cr(P.COMMON_Q_ENABLE, 2) === 1,
    setQueueVector: (v) => cw(P.COMMON_Q_MSIX, 2, useMsix ? v : 0xffff),
    notify(i) {
      cw(P.COMMON_Q_SELECT, 2, i);
      const off = cr(P.COMMON_Q_NOFF, 2);
      fn.barWrite(caps.notify.bar, caps.notify.offset + off * caps.notify.multiplier, 2, i);
    },
    readConfig: (o, s) => (caps.device == null ? 0 : fn.barRead(caps.device.bar, caps.device.offset + o, s)),
    writeConfig(o, s, v) {
      if (caps.device != null) fn.barWrite(caps.device.bar, caps.device.offset + o, s, v);
    },
    configGeneration: () => cr(P.COMMON_CFGGENERATION, 1),
    ackInterrupt: () => fn.barRead(caps.isr.bar, caps.isr.offset, 1) & (ISR_QUEUE | ISR_CONFIG),
  };
  return t;
}
