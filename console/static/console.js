// edgeacs console: the little the pages need beyond htmx. Everything
// works without it; it only shows an upload's progress.
document.addEventListener("htmx:xhr:progress", function (e) {
  var form = e.target.closest && e.target.closest("#upload");
  if (!form || !e.detail.lengthComputable) return;
  var bar = document.getElementById("upload-progress");
  bar.hidden = false;
  bar.value = Math.round(e.detail.loaded * 100 / e.detail.total);
});
