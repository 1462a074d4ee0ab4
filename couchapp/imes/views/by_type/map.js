function (doc) {
  // One row per document, keyed by its type: the id prefix before the first
  // ':' (file, picture, channel, ...). `imes status` reads this with group=true.
  var colon = doc._id.indexOf(':');
  if (colon > 0) {
    emit(doc._id.substring(0, colon), null);
  } else if (typeof doc.type === 'string') {
    emit(doc.type, null);
  }
}
