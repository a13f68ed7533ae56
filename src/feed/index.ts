export type { ChangeEvent, ChangeFeed, ChangeListener, FeedState, InvalidationScope } from "./change-feed.ts";
export type { FeedAddress } from "./redis-feed.ts";
export { LocalChangeFeed } from "./local-feed.ts";
export { PublishingKvNode } from "./publishing-node.ts";
