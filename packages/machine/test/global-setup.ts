// Prepares the Debian guest fixtures once, before any test file runs: the download and unpack
// take a while on a fresh machine, and doing it here keeps it out of every test's timeout.
import { canPrepareGuests, prepareGuest } from '../src/node';

export default function setup(): void {
  if (!canPrepareGuests()) {
    console.warn('SKIPPED: apt-get/dpkg-deb not available: the Debian guest fixtures are not prepared; tests that need them skip');
    return;
  }
  for (const arch of ['amd64', 'i386'] as const) {
    try {
      prepareGuest({ arch, log: (l) => console.log(`guest fixtures: ${l}`) });
    } catch (err) {
      console.warn(`guest fixtures: the ${arch} guest could not be prepared: ${(err as Error).message}`);
    }
  }
}
