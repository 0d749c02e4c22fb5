"use strict";
// TCP proxy that delays every chunk by DELAY_MS in each direction. fault.sh runs it inside a
// host's network namespace and redirects the host's incoming port 22 to it (this kernel has no
// sch_netem, so `tc qdisc ... netem delay` is not available).
//
//   node delay-proxy.cjs LISTEN_ADDR LISTEN_PORT TARGET_ADDR TARGET_PORT DELAY_MS PIDFILE
//
// SIGTERM: stop accepting, exit once the open connections are closed.
const fs = require("node:fs");
const net = require("node:net");

const [listenAddr, listenPort, targetAddr, targetPort, delayArg, pidFile] = process.argv.slice(2);
const delay = Number(delayArg);
if (!pidFile || !Number.isInteger(delay) || delay < 0) {
  console.error("usage: delay-proxy.cjs LISTEN_ADDR LISTEN_PORT TARGET_ADDR TARGET_PORT DELAY_MS PIDFILE");
  process.exit(2);
}

let open = 0;
let stopping = false;
const exitIfIdle = () => {
  if (stopping && open === 0) process.exit(0);
};

/** Forward from -> to, each chunk and the end-of-stream DELAY_MS later (timers keep the order). */
function forward(from, to) {
  from.on("data", (chunk) => {
    setTimeout(() => {
      if (to.writable) to.write(chunk);
    }, delay);
  });
  from.on("end", () => setTimeout(() => to.end(), delay));
  from.on("error", () => setTimeout(() => to.destroy(), delay));
}

const server = net.createServer((client) => {
  open++;
  const upstream = net.connect({ host: targetAddr, port: Number(targetPort) });
  forward(client, upstream);
  forward(upstream, client);
  let closed = 0;
  const onClose = () => {
    closed++;
    if (closed === 2) {
      open--;
      exitIfIdle();
    }
  };
  client.on("close", onClose);
  upstream.on("close", onClose);
});

server.on("error", (err) => {
  console.error(`delay-proxy: ${err.message}`);
  process.exit(1);
});
server.listen(Number(listenPort), listenAddr, () => {
  fs.writeFileSync(`${pidFile}.tmp`, `${process.pid}\n`);
  fs.renameSync(`${pidFile}.tmp`, pidFile);
});
process.on("SIGTERM", () => {
  stopping = true;
  server.close();
  exitIfIdle();
});
