/**
 * A study's report.md as HTML for the dashboard (marked from npm): raw HTML in the markdown is
 * shown as text, never run, and relative image and link targets point into the served folder.
 *
 * @module
 */
import { Marked, type Tokens } from "marked";

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

/** A relative target rewritten below `base`; absolute http(s) targets kept; others dropped. */
function target(href: string, base: string): string {
  if (/^https?:\/\//i.test(href)) return href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("/")) return "#";
  const segment = (s: string) => {
    try {
      return encodeURIComponent(decodeURIComponent(s));
    } catch {
      return encodeURIComponent(s);
    }
  };
  return `${base}/${href.split("/").map(segment).join("/")}`;
}

/**
 * Renders `markdown` whose relative links are relative to the served folder `dir` (a path
 * below the dashboard's root), with file URLs under `/files/`.
 *
 * @example
 * ```ts
 * import { renderMarkdown } from "./markdown.ts";
 * console.log(renderMarkdown("![grid](entries/a/samples.png)", "study"));
 * // <p><img src="/files/study/entries/a/samples.png" alt="grid"></p>
 * ```
 */
export function renderMarkdown(markdown: string, dir: string): string {
  const base = ["/files", ...dir.split("/").filter(Boolean).map(encodeURIComponent)].join("/");
  const marked = new Marked({
    gfm: true,
    renderer: {
      html: (token: Tokens.HTML | Tokens.Tag) => escapeHtml(token.text),
      image: (token: Tokens.Image) =>
        `<img src="${escapeHtml(target(token.href, base))}" alt="${escapeHtml(token.text)}">`,
      link(this: { parser: { parseInline(t: Tokens.Generic[]): string } }, token: Tokens.Link) {
        const inner = this.parser.parseInline(token.tokens);
        return `<a href="${escapeHtml(target(token.href, base))}">${inner}</a>`;
      },
    },
  });
  return marked.parse(markdown, { async: false }) as string;
}
