// `-device virtio-balloon-pci,...`: QEMU's property names, turned into a balloon description.
import type { BalloonDeviceDescription } from '../machine/balloon';

/** The -device properties of the balloon (QEMU's names). */
export const BALLOON_PROPS: readonly string[] = ['deflate-on-oom', 'free-page-reporting', 'free-page-hint', 'page-poison', 'guest-stats-polling-interval'];

/** Builds the balloon description from parsed -device properties. */
export function balloonDevice(flag: string, p: ReadonlyMap<string, string>, onOff: (flag: string, key: string, v: string) => boolean, fail: (msg: string) => never): BalloonDeviceDescription {
  const bool = (k: string): boolean | undefined => (p.has(k) ? onOff(flag, k, p.get(k)!) : undefined);
  const interval = p.get('guest-stats-polling-interval');
  if (interval !== undefined && !/^\d{1,9}$/.test(interval)) fail(`${flag} virtio-balloon-pci: guest-stats-polling-interval=${interval} must be a whole number of seconds`);
  const d: { -readonly [K in keyof BalloonDeviceDescription]: BalloonDeviceDescription[K] } = { type: 'virtio-balloon' };
  const doom = bool('deflate-on-oom');
  const fpr = bool('free-page-reporting');
  const fph = bool('free-page-hint');
  const poison = bool('page-poison');
  if (doom !== undefined) d.deflateOnOom = doom;
  if (fpr !== undefined) d.freePageReporting = fpr;
  if (fph !== undefined) d.freePageHint = fph;
  if (poison !== undefined) d.pagePoison = poison;
  if (interval !== undefined) d.statsPollingInterval = Number(interval);
  return d;
}
