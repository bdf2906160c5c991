// Test fixture (not exported): the Debian guest's command loop for the balloon and KSM tests.
// The guest's command loop: the host types a command on ttyS0, the guest answers with markers.
export const BALLOON_GUEST_SCRIPT: string = [
  'stty -echo 2>/dev/null',
  'mkdir -p /mnt/fill && mount -t ramfs ramfs /mnt/fill',
  'mem() { t=0; f=0; a=0; while read k v u; do case $k in MemTotal:) t=$v;; MemFree:) f=$v;; MemAvailable:) a=$v;; esac; done < /proc/meminfo; echo "MEM $1 $t $f $a"; }',
  'echo "FEATURES $(cat /sys/bus/virtio/drivers/virtio_balloon/virtio*/features)"',
  'echo READY',
  'while read cmd arg; do',
  '  case "$cmd" in',
  '    mem) mem "$arg" ;;',
  '    fill) mem fill; n=$((f / 1024 - arg)); dd if=/dev/zero of=/mnt/fill/z bs=1M count=$n 2>/dev/null; rm -f /mnt/fill/z; echo "FILLED $n" ;;',
  '    rand) dd if=/dev/urandom of=/tmp/x bs=1M count=$arg 2>/dev/null; echo "RAND $(sha256sum < /tmp/x)" ;;',
  '    xsum) echo "XSUM $(sha256sum < /tmp/x)" ;;',
  '    sum) echo "SUM $(sha256sum < /bin/busybox)" ;;',
  '    off) break ;;',
  '  esac',
  '  echo "DONE $cmd"',
  'done',
].join('\n');
