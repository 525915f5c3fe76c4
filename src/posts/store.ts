import { randomUUID } from "node:crypto";
import type { RedisClient } from "../redis.js";
import type { Post } from "../contract.js";
import type { NewPost } from "../schemas.js";
import { DEFAULT_PAGE, type PageRequest } from "../limits/paging.js";

/** Where posts live: memory for one process, Redis so that every replica lists the same posts. */
export interface PostStore {
  /** Newest first: `limit` posts, starting after the post `before` (none when that post is no longer kept). */
  list(page?: PageRequest): Promise<Post[]>;
  create(input: NewPost): Promise<Post>;
}

function makePost(input: NewPost): Post {
  return { id: randomUUID(), title: input.title, body: input.body, createdAt: new Date().toISOString() };
}

export function createMemoryPostStore(limit: number): PostStore {
  const posts: Post[] = [];
  return {
    list({ limit, before } = { limit: DEFAULT_PAGE }) {
      const start = before === undefined ? 0 : posts.findIndex((p) => p.id === before) + 1;
      return Promise.resolve(start === 0 && before !== undefined ? [] : posts.slice(start, start + limit));
    },
    create(input) {
      const post = makePost(input);
      posts.unshift(post);
      if (posts.length > limit) posts.length = limit;
      return Promise.resolve(post);
    },
  };
}

/** The store cannot answer now (Redis is away): the request may be retried later, on any replica. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`post store unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "StoreUnavailableError";
  }
}

async function orUnavailable<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new StoreUnavailableError(err);
  }
}

// Posts are stored as JSON with `id` first (makePost), so a post's entry starts with `{"id":"<id>",`.
// Scanned 100 at a time: the search stops at the post, and the list is capped (POSTS_LIMIT).
const PAGE_AFTER = `local prefix, size = ARGV[1], tonumber(ARGV[2])
local from = 0
while true do
  local items = redis.call('LRANGE', KEYS[1], from, from + 99)
  if #items == 0 then return {} end
  for i = 1, #items do
    if string.sub(items[i], 1, #prefix) == prefix then
      return redis.call('LRANGE', KEYS[1], from + i, from + i + size - 1)
    end
  end
  from = from + 100
end`;

const pageAfter = (redis: RedisClient, key: string, before: string, size: number) =>
  redis.eval(PAGE_AFTER, 1, key, `{"id":${JSON.stringify(before)},`, size) as Promise<string[]>;

export function createRedisPostStore(redis: RedisClient, keyPrefix: string, limit: number): PostStore {
  const key = `${keyPrefix}posts`;
  return {
    async list({ limit: size, before } = { limit: DEFAULT_PAGE }) {
      // The page after `before` is found inside Redis: only the page crosses the network.
      const page = before === undefined ? redis.lrange(key, 0, size - 1) : pageAfter(redis, key, before, size);
      const raw = await orUnavailable(page);
      return raw.map((entry) => JSON.parse(entry) as Post);
    },
    async create(input) {
      const post = makePost(input);
      // Newest first, capped, in one round trip.
      await orUnavailable(
        redis
          .multi()
          .lpush(key, JSON.stringify(post))
          .ltrim(key, 0, limit - 1)
          .exec(),
      );
      return post;
    },
  };
}
