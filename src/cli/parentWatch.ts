/**
 * Loaded (`node --import`) into the agent worker `dialer agent` starts: the worker runs in a process group of its own
 * (so one Ctrl-C reaches it once, forwarded by `dialer`), which also means nothing stops it when `dialer` itself is
 * killed outright (SIGKILL, a crash). This notices the parent is gone and sends the worker the SIGTERM a supervisor
 * would, so it drains and exits instead of living on as an orphan. The check is a timer that never keeps the process
 * alive.
 */
const PARENT_CHECK_MS = 1000;
const parent = process.ppid;

setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
}, PARENT_CHECK_MS).unref();
