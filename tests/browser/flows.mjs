// Flows of the web app that both browser suites run (app.test.mjs in
// Chromium, firefox.test.mjs in Firefox), written against lib.mjs's
// driver-neutral ui(), against the IMES of setup.mjs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { couchRequest } from '../lib/harness.mjs';
import { ui } from './lib.mjs';

export const TABS = ['search', 'playlist', 'rooms', 'settings'];

/** Types query into the filter; the albums shown once that search is done. */
export async function albumsShown(page, query) {
  const u = ui(page);
  await u.fill('#q', query);
  await u.until((q) => document.querySelector('#results').dataset.complete === q, query);
  return u.all('#results article.album', (els) => els.map((e) => e.dataset.album));
}

export function entryTitles(page) {
  return ui(page).all('#entries li[data-id]', (els) => els.map((e) => e.dataset.title));
}

/** The titles of channel:lounge's playlist in CouchDB, in playing order. */
export async function loungeOrder(env) {
  const r = await couchRequest(env.couch, 'GET',
    `/imes/_all_docs?include_docs=true&startkey=${encodeURIComponent('"entry:c~lounge:"')}&endkey=${encodeURIComponent('"entry:c~lounge:\ufff0"')}`,
    { user: 'admin' });
  const docs = r.body.rows.map((x) => x.doc).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a._id < b._id ? -1 : 1));
  const files = await couchRequest(env.couch, 'POST', '/imes/_all_docs?include_docs=true', { user: 'admin', body: { keys: docs.map((d) => d.file) } });
  const title = Object.fromEntries(files.body.rows.map((x) => [x.id, x.doc.tags.title[0]]));
  return docs.map((d) => title[d.file]);
}

/** Each search syntax with its right albums in setup.mjs's library. */
export function searchCases(env) {
  return [
    ['sine', ['Concert Pitch']],
    ['beatrice', ['Night Music']], // accents folded
    ['artist:squ', ['Low End']],
    ['title:hum', ['Low End', 'Night Music']],
    ['genre:electro', ['Night Music']],
    ['artist2:"Béatrice Électrique"', ['Night Music']],
    ['album2:"Low"', []],
    ['date:1975', ['Concert Pitch']],
    ['date:1970~1979', ['Concert Pitch', 'Low End']],
    ['date:1970~1979 hum', ['Low End']],
    ['mbid:0d5e3c5e-1f7a-4a43-9d6e-1c2a3b4c5d02', ['Low End']],
    [`path:${path.join(env.cfg.mediaDir, 'Beatrice')}`, ['Night Music']],
    ['concert five', ['Concert Pitch']],
  ];
}

export async function searchShowsTheRightAlbums(page, env) {
  for (const [q, want] of searchCases(env)) {
    const got = await albumsShown(page, q);
    assert.deepEqual(got.sort(), want, `query ${q}`);
  }
}

/** F1 help, / clears, Ctrl+F focuses the filter, typing anywhere searches. */
export async function keyboardWorks(page) {
  const u = ui(page);
  await u.press('F1');
  await u.waitFor('#help:not([hidden])');
  await u.press('Escape');
  await u.waitFor('#help', { hidden: true });
  await u.clickAt('#results', 5, 5);
  await u.press('/');
  assert.equal(await u.value('#q'), '');
  await u.clickAt('#results', 5, 5);
  await u.press('Control+f');
  assert.equal(await u.evaluate(() => document.activeElement.id), 'q');
  await u.clickAt('#results', 5, 5);
  await u.type('squ');
  await u.until(() => document.querySelector('#results').dataset.complete === 'squ');
  assert.deepEqual(await u.all('#results article.album', (els) => els.map((e) => e.dataset.album)), ['Low End']);
}

/** The screens (tabs) of the app at the page's size whose content is wider
 * than the window (a horizontal scrollbar); [] when none is. */
export async function screensOverflowing(page, tabs = TABS) {
  const u = ui(page);
  const wide = [];
  for (const tab of tabs) {
    await u.click(`.tabs a[data-tab=${tab}]`);
    await u.waitFor(`#view-${tab}`);
    const [scroll, client] = await u.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    if (scroll > client) wide.push(`${tab}: ${scroll} > ${client}`);
  }
  return wide;
}

// run in the page: self-contained
const hasEntry = (title) => [...document.querySelectorAll('#entries li[data-id]')].some((e) => e.dataset.title === title);
const hasNoEntry = (title) => ![...document.querySelectorAll('#entries li[data-id]')].some((e) => e.dataset.title === title);

/** Two users' pages on the same channel: what one does the other sees
 * without reloading (an added track, a removed one, pause and resume). */
export async function changesShowLive(actor, watcher) {
  const a = ui(actor), w = ui(watcher);
  await w.click('.tabs a[data-tab=playlist]');
  await a.click('.tabs a[data-tab=playlist]');
  const titles = await entryTitles(actor);
  await w.until((n) => document.querySelectorAll('#entries li[data-id]').length === n, titles.length, { timeout: 10000 });
  assert.deepEqual(await entryTitles(watcher), titles);
  // the actor appends a track; the watcher sees it
  await a.click('.tabs a[data-tab=search]');
  await albumsShown(actor, 'title:eight');
  await a.click('#results li.track .add-track');
  await w.until(hasEntry, 'Eight Eighty', { timeout: 10000 });
  // the watcher removes it; the actor sees it go
  await w.click('#entries li[data-title="Eight Eighty"] .remove');
  await a.click('.tabs a[data-tab=playlist]');
  await a.until(hasNoEntry, 'Eight Eighty', { timeout: 10000 });
  // the actor pauses and resumes; the watcher's now-playing bar follows
  await a.click('#now-pause');
  await w.waitFor('#now[data-state=paused]', { timeout: 10000 });
  await a.click('#now-pause');
  await w.waitFor('#now[data-state=playing]', { timeout: 10000 });
}

/** Adds the album Concert Pitch to the room's channel (empty before) from
 * the search; the playlist shows its tracks, the first plays, and the
 * progress bar moves. The room must have a device connected. */
export async function enqueueAndSeeItPlay(page) {
  const u = ui(page);
  await albumsShown(page, 'sine');
  await u.click('#results article.album .add-album');
  await u.click('.tabs a[data-tab=playlist]');
  await u.until(() => document.querySelectorAll('#entries li[data-id]').length === 3);
  assert.deepEqual(await entryTitles(page), ['Concert A', 'Five Fifty', 'Six Sixty']);
  await u.until(() => document.querySelector('#now').dataset.state === 'playing' &&
    document.querySelector('#now-title').textContent === 'Concert A', null, { timeout: 20000 });
  await u.waitFor('#entries li.current.playing');
  const p1 = Number(await u.attr('#now .progress', 'aria-valuenow'));
  await u.until((p) => Number(document.querySelector('#now .progress').getAttribute('aria-valuenow')) > p, p1, { timeout: 3000 });
}
