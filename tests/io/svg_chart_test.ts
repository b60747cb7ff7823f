import assert from "node:assert/strict";
import { lineChartSvg, niceTicks } from "../../src/io/svg_chart.ts";

Deno.test("niceTicks covers the range with round steps of 1, 2 or 5 x 10^k", () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(3, 97, 5), [20, 40, 60, 80]);
  assert.deepEqual(niceTicks(-0.5, 10.5, 5), [0, 5, 10]);
  assert.deepEqual(niceTicks(2, 2), [2]);
});

Deno.test("lineChartSvg maps data to pixels inside the plot area, skipping non-finite points", () => {
  // 480 x 260 with margins 56/14/30/40: x in [0, 10] -> [56, 466]; y in [0, 10], padded 5%
  // to [-0.5, 10.5] -> [211.4, 38.6] (py(y) = 30 + (1 - (y + 0.5) / 11) * 190).
  const svg = lineChartSvg([{ name: "loss", x: [0, 5, 10, 11], y: [0, NaN, 10, Infinity] }], {
    title: "a <b> & c",
  });
  assert.match(svg, /<polyline [^>]*points="56\.0,211\.4 466\.0,38\.6"\/>/);
  assert.match(svg, /a &lt;b&gt; &amp; c/);
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.doesNotMatch(svg, /<script/);
  // One series: no legend; two: one legend entry each.
  assert.doesNotMatch(svg, />loss<\/text>/);
  const two = lineChartSvg([
    { name: "lossD", x: [1, 2], y: [1, 2] },
    { name: "lossG", x: [1, 2], y: [2, 1] },
  ]);
  assert.equal(two.match(/<polyline/g)?.length, 2);
  assert.match(two, />lossD<\/text>[\s\S]*>lossG<\/text>/);
});

Deno.test("lineChartSvg says 'no data' for empty series and handles a log axis", () => {
  assert.match(lineChartSvg([{ name: "x", x: [], y: [] }]), />no data</);
  const log = lineChartSvg([{ name: "x", x: [1, 2, 3], y: [1, 10, -1] }], { logY: true });
  assert.equal(log.match(/points="([^"]*)"/)![1].split(" ").length, 2);
});
