// Exercises ioredis and node-redis (npm's "redis") with their DEFAULT
// options against a RESP port: ready check, get, mget, pipeline, multi.
// usage: NODE_PATH=DIR/node_modules node node_clients.js PORT
// Prints one JSON line: {"ioredis": {...}, "noderedis": {...}}, where a
// client that failed has {"error": "..."}.
const port = Number(process.argv[2]);
const Redis = require('ioredis');
const { createClient } = require('redis');

async function viaIoredis() {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: false });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('ioredis never ready')), 5000);
    r.once('ready', () => { clearTimeout(t); resolve(); });
  });
  const out = {};
  out.get = await r.get('k1');
  out.mget = await r.mget('k1', 'k2', 'absent');
  out.pipeline = await r.pipeline().get('k1').get('k2').exec();
  out.multi = await r.multi().get('k1').mget('k1', 'k2').exec();
  out.info = (await r.info('server')).includes('redis_mode:standalone');
  r.disconnect();
  return out;
}

async function viaNodeRedis() {
  const c = createClient({ url: `redis://127.0.0.1:${port}` });
  c.on('error', () => {});
  await c.connect();
  const out = {};
  out.get = await c.get('k1');
  out.mget = await c.mGet(['k1', 'k2', 'absent']);
  out.pipeline = await c.multi().get('k1').get('k2').execAsPipeline();
  // Commands issued together are pipelined by node-redis itself.
  out.auto = await Promise.all([c.get('k1'), c.get('k2'), c.get('absent')]);
  out.multi = await c.multi().get('k1').mGet(['k1', 'k2']).exec();
  await c.quit();
  return out;
}

(async () => {
  const res = {};
  try { res.ioredis = await viaIoredis(); } catch (e) { res.ioredis = { error: String(e) }; }
  try { res.noderedis = await viaNodeRedis(); } catch (e) { res.noderedis = { error: String(e) }; }
  console.log(JSON.stringify(res));
  process.exit(0);
})();
