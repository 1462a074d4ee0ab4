// Matriz peers for the integration tests: a real pouchdb-server and imesd,
// peers made with `imes peer add`, and `matriz` processes with the file/tone
// backend whose logs, output files and roster documents the tests read.
//
//   const mesh = new Mesh(['lisboa', 'porto']);
//   before(() => mesh.start());  after(() => mesh.stop());
//   await mesh.startPeer('lisboa', { audio: { tone_hz: 440 } });
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startCouch, writeConfig, imes, startImesd, couchRequest, freePort, freeRtpPort, startProcess,
  binPath, toYaml,
} from './harness.mjs';

/** peer.yaml sections: `over`'s keys replace `base`'s, section by section. */
function merge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over ?? {}))
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && base[k] ? { ...base[k], ...v } : v;
  return out;
}

export class Mesh {
  /** names: the peers `imes peer add` makes (their keys in this.keys). */
  constructor(names) {
    this.names = names;
    this.keys = {};
    this.peers = {};
    this.couch = null;
    this.cfg = null;
    this.imesd = null;
  }

  async start() {
    this.couch = await startCouch();
    this.cfg = await writeConfig(this.couch);
    const init = await imes(this.cfg, ['init']);
    assert.equal(init.code, 0, init.stderr);
    for (const name of this.names) {
      const r = await imes(this.cfg, ['peer', 'add', name]);
      assert.equal(r.code, 0, r.stderr);
      this.keys[name] = /^key ([0-9a-f]+)$/m.exec(r.stdout)[1];
    }
    this.imesd = await startImesd(this.cfg);
  }

  async stop() {
    for (const p of Object.values(this.peers)) if (p.proc) await p.proc.stop();
    if (this.imesd) await this.imesd.stop();
    if (this.couch) await this.couch.stop();
  }

  /** Starts (or starts again, with the same folder and ports) the peer
   * `name`; `conf` is merged over the defaults: the tone backend (period
   * 128, -12 dBFS) writing its outputs to p.outDir, a debug log in
   * p.logPath, ports of its own. Resolves to the peer: {dir, outDir,
   * logPath, rtspPort, rtpMin, config, proc}. */
  async startPeer(name, conf = {}) {
    let p = this.peers[name];
    if (!p) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `imes-test-matriz-${name}-`));
      p = { dir, outDir: path.join(dir, 'out'), logPath: path.join(dir, 'matriz.log') };
      fs.mkdirSync(p.outDir);
      p.rtspPort = await freePort();
      p.rtpMin = await freeRtpPort(); // the RTSP server's pair; links take the next ones
      this.peers[name] = p;
    }
    const base = {
      peer: { name, key: this.keys[name], imesd: this.imesd.url },
      roster: { couchdb: this.couch.url, database: 'imes' },
      net: { bind_host: '127.0.0.1', rtsp_port: p.rtspPort, rtp_min: p.rtpMin, rtp_max: p.rtpMin + 40 },
      audio: { backend: 'file', period: 128, tone_dbfs: -12, output_dir: p.outDir },
      log: { level: 'debug', file: p.logPath },
    };
    p.config = path.join(p.dir, 'peer.yaml');
    fs.writeFileSync(p.config, toYaml(merge(base, conf)));
    p.proc = startProcess(binPath('matriz'), ['-c', p.config], { name: `matriz-${name}`, cwd: p.dir });
    return p;
  }

  /** The roster document of a peer, or null. */
  async peerDoc(name) {
    const r = await couchRequest(this.couch, 'GET', `/imes/${encodeURIComponent('peer:' + name)}`, { user: 'admin' });
    return r.status === 200 ? r.body : null;
  }

  /** What a peer logged so far ('' before it wrote anything). */
  logOf(name) {
    try {
      return fs.readFileSync(this.peers[name].logPath, 'utf8');
    } catch {
      return '';
    }
  }
}
