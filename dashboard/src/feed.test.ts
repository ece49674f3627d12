import { describe, expect, it } from "vitest";

import { merge, newestFirst } from "./feed";
import { quantile } from "./format";
import { alert } from "./test/fixtures";

describe("merge", () => {
  it("adds only unseen ids and keeps newest first", () => {
    const known = newestFirst([alert({ alert_id: "a", ts_event: 1 }), alert({ alert_id: "b", ts_event: 3 })]);
    const merged = merge(known, [alert({ alert_id: "b", ts_event: 3 }), alert({ alert_id: "c", ts_event: 2 })]);
    expect(merged.map((a) => a.alert_id)).toEqual(["b", "c", "a"]);
  });

  it("returns the same array when nothing is new (no re-render)", () => {
    const known = [alert({ alert_id: "a" })];
    expect(merge(known, [alert({ alert_id: "a" })])).toBe(known);
  });

  it("orders equal event times by id, whatever the arrival order", () => {
    const a = [alert({ alert_id: "y", ts_event: 5 }), alert({ alert_id: "x", ts_event: 5 })];
    expect(newestFirst(a).map((x) => x.alert_id)).toEqual(["x", "y"]);
    expect(newestFirst([...a].reverse()).map((x) => x.alert_id)).toEqual(["x", "y"]);
  });
});

describe("quantile", () => {
  it("is the nearest rank", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(quantile(values, 0.5)).toBe(50);
    expect(quantile(values, 0.99)).toBe(99);
    expect(quantile([], 0.5)).toBeNull();
  });
});
