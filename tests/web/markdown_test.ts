import assert from "node:assert/strict";
import { renderMarkdown } from "../../src/web/markdown.ts";

Deno.test("renderMarkdown renders tables, points relative images into the folder, escapes raw HTML", () => {
  const html = renderMarkdown(
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n![grid](entries/x%20y/samples.png)\n\n" +
      "<img src=x onerror=alert(1)> [doc](https://example.org) [js](javascript:alert(1))",
    "studies/s1",
  );
  assert.match(html, /<table>[\s\S]*<td>1<\/td>/);
  assert.match(html, /<img src="\/files\/studies\/s1\/entries\/x%20y\/samples\.png" alt="grid">/);
  assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  assert.match(html, /<a href="https:\/\/example\.org">doc<\/a>/);
  assert.match(html, /<a href="#">js<\/a>/);
});
