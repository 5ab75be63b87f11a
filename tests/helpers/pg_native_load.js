// Node.js with pg-native (libpq through the npm module "libpq"): N clients
// at once, each connecting (libpq's connect runs on a libuv worker
// thread), running a query, holding the connection HOLD_MS and ending it,
// while a ticker measures how long the event loop was ever kept from
// running. Prints one JSON line.
//   node pg_native_load.js N HOLD_MS
const Client = require('pg-native');

const n = parseInt(process.argv[2] || '6', 10);
const hold = parseInt(process.argv[3] || '300', 10);
let worst = 0, last = Date.now(), done = 0;
const errors = [], pids = new Set();
const tick = setInterval(() => {
  const now = Date.now();
  worst = Math.max(worst, now - last - 5);
  last = now;
}, 5);

function finished() {
  if (++done < n) return;
  clearInterval(tick);
  console.log(JSON.stringify({errors: errors.length, first_error: errors[0] || null,
                              backends: pids.size, max_stall_ms: worst}));
}

for (let i = 0; i < n; i++) {
  const client = new Client();
  client.connect('', (err) => {
    if (err) { errors.push(String(err)); finished(); return; }
    client.query('select pg_backend_pid() as pid', (err2, rows) => {
      if (err2) errors.push(String(err2)); else pids.add(rows[0].pid);
      setTimeout(() => client.end(finished), hold);
    });
  });
}
