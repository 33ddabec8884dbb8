#!/usr/bin/env bash
# quiet.sh CMD...  — run CMD (a timing run) with every other workload on this machine paused.
#  - one quiet run at a time (waits on /tmp/quiet.lock);
#  - pauses (SIGSTOP) every process whose working directory is under /work or /tmp and that is
#    not an ancestor of this script (builds, tests, benchmarks, JVMs and shells of the other workers);
#  - CMD runs for at most QUIET_LIMIT seconds (default 180, never more than 240);
#  - everything is resumed afterwards, on error too, and by a watchdog even if this script dies.
set -u
LIMIT=${QUIET_LIMIT:-180}
[ "$LIMIT" -gt 240 ] && LIMIT=240
exec 9>/tmp/quiet.lock
flock 9
anc=" "
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do anc="$anc$p "; p=$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' '); done
pids=()
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  case "$anc" in *" $pid "*) continue ;; esac
  c=$(readlink "$d/cwd" 2>/dev/null) || continue
  case "$c" in /work/*|/work|/tmp/*) ;; *) continue ;; esac
  # (other workers' shells are paused too, so that nothing they start runs during the window;
  # another quiet.sh waiting for the lock is left alone)
  args=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
  case "$args" in *quiet.sh*) continue ;; esac
  pids+=("$pid")
done
wd=""
resume() {
  [ ${#pids[@]} -gt 0 ] && kill -CONT "${pids[@]}" 2>/dev/null
  [ -n "$wd" ] && kill "$wd" 2>/dev/null
}
if [ ${#pids[@]} -gt 0 ]; then
  # the watchdog must not hold the lock (fd 9): it outlives this script only if this one is killed
  setsid bash -c "sleep $((LIMIT + 20)); kill -CONT ${pids[*]}" >/dev/null 2>&1 9>&- &
  wd=$!
  kill -STOP "${pids[@]}" 2>/dev/null
fi
trap resume EXIT INT TERM
echo "quiet.sh: paused ${#pids[@]} processes; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%H:%M:%S)" >&2
timeout "$LIMIT" "$@"
rc=$?
exit $rc
