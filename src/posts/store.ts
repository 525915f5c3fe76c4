import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Post } from "../contract.js";
import type { NewPost } from "../schemas.js";

/** Where posts live: memory for one process, Redis so that every replica lists the same posts. */
export interface PostStore {
  list(): Promise<Post[]>;
  create(input: NewPost): Promise<Post>;
}

function makePost(input: NewPost): Post {
  return { id: randomUUID(), title: input.title, body: input.body, createdAt: new Date().toISOString() };
}

export function createMemoryPostStore(limit: number): PostStore {
  const posts: Post[] = [];
  return {
    list: () => Promise.resolve(posts.slice()),
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

export function createRedisPostStore(redis: Redis, keyPrefix: string, limit: number): PostStore {
  const key = `${keyPrefix}posts`;
  return {
    async list() {
      const raw = await orUnavailable(redis.lrange(key, 0, limit - 1));
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
