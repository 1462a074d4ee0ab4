function (doc, req) {
  // imesd's changes feed: everything it acts on, i.e. all but the documents
  // it writes itself (file:, picture:, status:) and the design documents.
  // Deleted documents keep their _id, so deletions pass the same way.
  var id = doc._id;
  if (id.indexOf('_design/') === 0) {
    return false;
  }
  var type = id.substring(0, id.indexOf(':'));
  return type !== 'file' && type !== 'picture' && type !== 'status';
}
