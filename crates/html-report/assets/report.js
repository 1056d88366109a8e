// Draws every chart of the page from the options the report wrote (#chart-options). The SVG
// renderer keeps every mark in the DOM, where the page's checks (and a reader's tools) find it.
(function () {
  var fmt = function (x) { return Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3); };
  // Options are plain JSON; a formatter named '@interval' is this function: a box drawn from
  // [lo, lo, median, hi, hi] reads as a median and its interval.
  var formatters = {
    '@interval': function (p) {
      var v = p.value.slice(-5);
      var interval = v[0] === v[4] ? 'no interval' : 'interval ' + fmt(v[0]) + ' – ' + fmt(v[4]);
      return p.seriesName + '<br>' + p.name + '<br>median <b>' + fmt(v[2]) + '</b>, ' + interval;
    }
  };
  var options = JSON.parse(document.getElementById('chart-options').textContent);
  var charts = {};
  document.querySelectorAll('[data-chart]').forEach(function (el) {
    var id = el.getAttribute('data-chart');
    var option = options[id];
    (option.series || []).forEach(function (s) {
      if (s.tooltip && formatters[s.tooltip.formatter]) s.tooltip.formatter = formatters[s.tooltip.formatter];
    });
    var chart = echarts.init(el, null, { renderer: 'svg' });
    chart.setOption(option);
    charts[id] = chart;
  });
  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (id) { charts[id].resize(); });
  });
  window.reportCharts = charts;
})();
