function (doc) {
  // The library search of the web app, as one index of [field, term] keys
  // (one view: pouchdb-server builds every view as a separate index).
  //   ["any"|"artist"|"album"|"title"|"genre", word]  word of the tag,
  //        lower-case, accents folded: query a word prefix with
  //        startkey [f, "bea"], endkey [f, "bea\ufff0"]
  //   ["artist2"|"album2"|"title2"|"genre2"|"albumartist2", value]  exact
  //   ["path", folder]   the file's folder: prefix query for a subtree
  //   ["date", date]     as tagged ("1979", "1979-05-01"): range queries
  //   ["mbid", id]       every MusicBrainz id of the file
  // The value is the album grouping key and the sort position, so a result
  // page can be grouped by album and ordered by disc and track without
  // fetching documents, then what the web app checks a second search term
  // on without fetching documents:
  //   [albumartist-or-artist, album, disc, track, title, genre, date, more]
  // (the first title, genre and date; more is 1 when the value does not
  // hold every artist, title, genre and date of the file, so a check on it
  // is not enough). `imes` reads only the keys.
  if (doc._id.indexOf('file:') !== 0 || doc._deleted || doc.error || !doc.tags) {
    return;
  }
  var t = doc.tags;

  function fold(s) {
    s = String(s).toLowerCase();
    if (typeof s.normalize === 'function') {
      s = s.normalize('NFD').replace(/[\u0300-\u036f]/g, '');
    }
    return s.replace(/\u00df/g, 'ss').replace(/\u00e6/g, 'ae').replace(/\u0153/g, 'oe')
      .replace(/\u00f8/g, 'o').replace(/\u0142/g, 'l').replace(/\u0111/g, 'd');
  }
  function words(s) {
    // "Don't" is one word: apostrophes join, everything else separates.
    var parts = fold(s).replace(/['\u2019]/g, '').split(/[\s\-\u2010-\u2015_.,;:!?"'\u2018\u2019\u201c\u201d()\[\]{}\/\\&+*#@~`|<>=]+/);
    var out = [];
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].length > 0) {
        out.push(parts[i]);
      }
    }
    return out;
  }
  function list(v) {
    if (v === undefined || v === null) {
      return [];
    }
    return Object.prototype.toString.call(v) === '[object Array]' ? v : [v];
  }

  var artist = list(t.albumartist)[0] || list(t.artist)[0] || '';
  var artists = list(t.artist), more = 0;
  if (artists.length > 1 || list(t.title).length > 1 || list(t.genre).length > 1 ||
      list(t.date).length > 1 || list(t.album).length > 1 || list(t.albumartist).length > 1 ||
      (list(t.albumartist).length && artists.length && String(artists[0]) !== String(list(t.albumartist)[0]))) {
    more = 1;
  }
  var value = [artist, list(t.album)[0] || '', t.discnumber || 0, t.tracknumber || 0,
               String(list(t.title)[0] || ''), String(list(t.genre)[0] || ''), String(list(t.date)[0] || ''), more];
  var seen = {};
  function once(key) {
    var k = JSON.stringify(key);
    if (!seen[k]) {
      seen[k] = true;
      emit(key, value);
    }
  }

  var fields = { artist: ['artist', 'albumartist'], album: ['album'], title: ['title'], genre: ['genre'] };
  for (var f in fields) {
    for (var j = 0; j < fields[f].length; j++) {
      var vals = list(t[fields[f][j]]);
      for (var k = 0; k < vals.length; k++) {
        var ws = words(vals[k]);
        for (var w = 0; w < ws.length; w++) {
          once([f, ws[w]]);
          if (f !== 'genre') {
            once(['any', ws[w]]);
          }
        }
        once([fields[f][j] + '2', String(vals[k])]);
      }
    }
  }
  if (doc.folder) {
    once(['path', doc.folder]);
  }
  var dates = list(t.date);
  for (var d = 0; d < dates.length; d++) {
    once(['date', String(dates[d])]);
  }
  for (var key in t) {
    if (key.indexOf('musicbrainz_') === 0) {
      var ids = list(t[key]);
      for (var m = 0; m < ids.length; m++) {
        once(['mbid', String(ids[m]).toLowerCase()]);
      }
    }
  }
}
