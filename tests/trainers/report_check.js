// What a reader of report.html sees, measured in the browser (the Report.RendersInChromium test
// appends this to a copy of the page and reads the result from `chromium --dump-dom`): a pre
// element (id mxqat-check) with "CHARTS n WIDTH w", then "ALL OK" or one problem per line.
(function () {
  var out = [], de = document.documentElement;
  if (de.scrollWidth > de.clientWidth)
    out.push('page overflow: scrollWidth ' + de.scrollWidth + ' > clientWidth ' + de.clientWidth);
  document.querySelectorAll('.table-wrap').forEach(function (w) {
    if (w.scrollWidth > w.clientWidth + 1) out.push('table wider than the page: ' + w.firstElementChild.id);
  });
  function hit(a, b) {
    return a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  }
  function box(e) { return e.getBoundingClientRect(); }
  var charts = document.querySelectorAll('svg.chart');
  charts.forEach(function (s) {
    var id = s.id, sb = box(s);
    if (!s.querySelector('.axis-title')) out.push(id + ': no axis title');
    var fig = s.closest('figure');
    if (!fig || !fig.querySelector('figcaption').textContent.trim()) out.push(id + ': no caption');
    // Tick labels: present, and distinct on each axis.
    var ticks = s.querySelectorAll('text[class^=tick-]');
    if (ticks.length < 2) out.push(id + ': no tick labels');
    var by = {};
    ticks.forEach(function (t) { var c = t.getAttribute('class'); (by[c] = by[c] || []).push(t); });
    for (var c in by) {
      var seen = {};
      by[c].forEach(function (t) {
        if (seen[t.textContent]) out.push(id + ': duplicate ' + c + ' label "' + t.textContent + '"');
        seen[t.textContent] = 1;
      });
    }
    // Upright labels (ticks, titles, marker labels) never overlap one another or a legend entry.
    var lab = [].slice.call(s.querySelectorAll('text')).filter(function (t) {
      var c = t.getAttribute('class');
      return !t.getAttribute('transform') && c !== 'cell' && c !== 'legend-text';
    });
    for (var i = 0; i < lab.length; i++)
      for (var j = i + 1; j < lab.length; j++)
        if (hit(box(lab[i]), box(lab[j])))
          out.push(id + ': labels overlap: "' + lab[i].textContent + '" / "' + lab[j].textContent + '"');
    var leg = [].slice.call(s.querySelectorAll('.legend-item'));
    for (var i = 0; i < leg.length; i++) {
      var a = box(leg[i]);
      for (var j = i + 1; j < leg.length; j++)
        if (hit(a, box(leg[j])))
          out.push(id + ': legend entries overlap: "' + leg[i].textContent + '" / "' + leg[j].textContent + '"');
      lab.forEach(function (t) {
        if (hit(a, box(t)))
          out.push(id + ': legend entry "' + leg[i].textContent + '" overlaps "' + t.textContent + '"');
      });
    }
    // Rotated (45 degree) labels: at least 15 px between neighbours.
    var rot = [].slice.call(s.querySelectorAll('text[transform][class^=tick-]'))
                  .map(function (t) { return box(t).right; }).sort(function (a, b) { return a - b; });
    for (var i = 1; i < rot.length; i++)
      if (rot[i] - rot[i - 1] < 15) out.push(id + ': rotated labels ' + (rot[i] - rot[i - 1]).toFixed(1) + ' px apart');
    // No text cut off at the chart's edge.
    s.querySelectorAll('text').forEach(function (t) {
      var b = box(t);
      if (b.left < sb.left - 1 || b.right > sb.right + 1 || b.top < sb.top - 1 || b.bottom > sb.bottom + 1)
        out.push(id + ': text outside the chart: "' + t.textContent + '"');
    });
  });
  var r = document.createElement('pre');
  r.id = 'mxqat-check';
  r.textContent = 'CHARTS ' + charts.length + ' WIDTH ' + de.scrollWidth + '\n' +
                  (out.length ? out.join('\n') : 'ALL OK');
  document.body.appendChild(r);
})();
