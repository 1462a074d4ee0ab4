function (doc, req) {
  // Matriz peers' roster feed: the peer: documents only (imesd writes them;
  // every peer follows them to open and close its sessions).
  return doc._id.indexOf('peer:') === 0;
}
