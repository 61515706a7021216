// The little DOM helpers both pages use. Importing touches nothing (Node
// loads this module for the tests); `$` reads the document when called.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `s` as text safe inside HTML, in element content and in quoted attribute values alike. */
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}
