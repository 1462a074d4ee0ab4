// Settings → Scrobbling in real headless Chromium against pouchdb-server,
// imesd and the stand-in Last.fm/ListenBrainz (tests/lib/fakescrobbler.mjs):
// link Last.fm by following the approval link the page shows (the service's
// page opens in a new tab, where the user is logged in at the service), link
// ListenBrainz with a pasted token (a bad one refused with imesd's reason
// shown), the links still there after a reload, unlink. The user doc shows
// only the account names; the keys stay in imes_private.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { couchRequest, waitFor } from '../lib/harness.mjs';
import { FakeScrobbler } from '../lib/fakescrobbler.mjs';
import { startImes, USERS } from './setup.mjs';
import { launch, newPage, login } from './lib.mjs';

const API_KEY = 'imesbrowserkey0123456789abcdef0';
const SECRET = 'browser test secret';
const LB_TOKEN = '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';

let fake, env, browser, page;

before(async () => {
  fake = await new FakeScrobbler({ apps: { [API_KEY]: SECRET }, lbTokens: { [LB_TOKEN]: 'alice-lb' } }).start();
  env = await startImes({
    library: false,
    config: {
      scrobbler: {
        lastfm_key: API_KEY, lastfm_secret: SECRET,
        lastfm_api: `${fake.url}/2.0/`, lastfm_auth: `${fake.url}/api/auth/`,
        listenbrainz_api: fake.url,
      },
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await env?.stop();
  await fake?.stop();
});

const row = (k) => `#scrobblers [data-service=${k}]`;
const userDoc = async () => (await couchRequest(env.couch, 'GET', '/imes/user:alice', { user: 'admin' })).body;
const privateDoc = async (id) => couchRequest(env.couch, 'GET', `/imes_private/${encodeURIComponent(id)}`, { user: 'admin' });

test('Settings: link Last.fm through its approval page and ListenBrainz with a token, then unlink', async () => {
  page = await newPage(browser);
  await login(page, env.imesdUrl, 'alice', USERS.alice.password);
  await page.click('.tabs a[data-tab=settings]');
  await page.waitForSelector(`${row('lastfm')} button:has-text("Link")`);
  assert.match(await page.textContent(row('librefm')), /not set up on this server/);

  // Last.fm: Link → the approval link → allow at the service → Done.
  await page.click(`${row('lastfm')} button:has-text("Link")`);
  const link = await page.waitForSelector(`${row('lastfm')} a.scrobble-approve`);
  assert.ok((await link.getAttribute('href')).startsWith(`${fake.url}/api/auth/?api_key=${API_KEY}&token=`));
  await page.ctx.addCookies([{ name: 'fakeuser', value: 'alice-lfm', url: fake.url }]);
  const [tab] = await Promise.all([page.waitForEvent('popup'), link.click()]);
  await tab.waitForLoadState();
  assert.match(await tab.textContent('body'), /Application authorized/);
  await tab.close();
  await page.click(`${row('lastfm')} button:has-text("Done")`);
  await page.waitForSelector(`${row('lastfm')} :text("Linked as alice-lfm")`);
  await waitFor(async () => (await userDoc()).scrobblers?.lastfm?.user === 'alice-lfm', { what: 'user doc: lastfm alice-lfm' });
  const ses = await privateDoc('scrobble:session:alice:lastfm');
  assert.equal(ses.status, 200);
  assert.equal(fake.sessions.get(ses.body.key), 'alice-lfm');
  assert.deepEqual((await userDoc()).scrobblers.lastfm, { user: 'alice-lfm' }, 'no key in the user doc');

  // ListenBrainz: a bad token is refused with the reason; a good one links.
  await page.fill(`${row('listenbrainz')} input`, 'wrong-token');
  await page.click(`${row('listenbrainz')} button:has-text("Link")`);
  await page.waitForSelector(`${row('listenbrainz')} .scrobble-note:has-text("did not accept this token")`);
  // That 400 is what the page expects; Chromium logs every 4xx fetch.
  page.errors = page.errors.filter((e) => !/status of 400/.test(e));
  await page.fill(`${row('listenbrainz')} input`, LB_TOKEN);
  await page.click(`${row('listenbrainz')} button:has-text("Link")`);
  await page.waitForSelector(`${row('listenbrainz')} :text("Linked as alice-lb")`);

  // What imesd says survives a reload.
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.click('.tabs a[data-tab=settings]');
  await page.waitForSelector(`${row('lastfm')} :text("Linked as alice-lfm")`);
  await page.waitForSelector(`${row('listenbrainz')} :text("Linked as alice-lb")`);

  // Unlink Last.fm: gone from imes_private and from the user doc.
  await page.click(`${row('lastfm')} button:has-text("Unlink")`);
  await page.waitForSelector(`${row('lastfm')} button:has-text("Link")`);
  // (The row may turn before imesd's answer, which comes once the key is deleted.)
  await waitFor(async () => (await privateDoc('scrobble:session:alice:lastfm')).status === 404, { timeout: 5000, what: 'the Last.fm key deleted' });
  await waitFor(async () => !(await userDoc()).scrobblers?.lastfm, { what: 'user doc without lastfm' });
  assert.deepEqual((await userDoc()).scrobblers, { listenbrainz: { user: 'alice-lb' } });
  assert.deepEqual(page.errors, [], 'console errors');
});
