// Preloaded (node -r) into the pouchdb-server processes the test harness and
// scripts/run start: when the process that started us goes away without
// stopping us (a test runner killed with SIGKILL, a closed terminal), we exit
// too instead of holding a port and a data directory forever.
'use strict';
const parent = process.ppid;
setInterval(() => {
  // Reparented (to init or a subreaper): whoever started us is gone.
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();
