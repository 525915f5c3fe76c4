/** GET /api/posts pages: `?limit=` (1..MAX_PAGE, default DEFAULT_PAGE) and `&before=<post id>`. */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 100;

export interface PageRequest {
  limit: number;
  /** The id of the last post of the previous page: the page starts with the next older one. */
  before?: string;
}

export type PageQuery = { ok: true; page: PageRequest } | { ok: false; field: string; message: string };

// Post ids are UUIDs (src/posts/store.ts); anything else cannot name a post.
const POST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Reads the paging parameters of a query string; a bad value is named, never echoed. */
export function parsePageQuery(query: Record<string, unknown>): PageQuery {
  const rawLimit = query.limit;
  let limit = DEFAULT_PAGE;
  if (rawLimit !== undefined) {
    if (
      typeof rawLimit !== "string" ||
      !/^\d{1,4}$/.test(rawLimit) ||
      Number(rawLimit) < 1 ||
      Number(rawLimit) > MAX_PAGE
    )
      return { ok: false, field: "limit", message: `limit must be an integer from 1 to ${MAX_PAGE}` };
    limit = Number(rawLimit);
  }
  const before = query.before;
  if (before === undefined) return { ok: true, page: { limit } };
  if (typeof before !== "string" || !POST_ID.test(before))
    return { ok: false, field: "before", message: "before must be the id of a post" };
  return { ok: true, page: { limit, before } };
}
