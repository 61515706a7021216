// HTML escaping: names from the roster go into the HUD's markup.

import { test } from "node:test";
import assert from "node:assert/strict";

import { escapeHtml } from "../dom.js";

test("markup in a name comes out as text", () => {
  assert.equal(escapeHtml(`<img src=x onerror="alert('1')">&amp;`),
    "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;amp;");
  assert.equal(escapeHtml("Zoë ✕ 名前"), "Zoë ✕ 名前");
});

test("anything is turned into a string first", () => {
  assert.equal(escapeHtml(42), "42");
  assert.equal(escapeHtml(null), "null");
  assert.equal(escapeHtml(undefined), "undefined");
});
