// A binary min-heap of strings: the spool's eviction order (oldest file name first) at O(log n) per write.

export class Heap {
  /** @param {string[]} [sorted] items already in ascending order (a sorted array is a heap) */
  constructor(sorted = []) {
    /** @type {string[]} */
    this.items = sorted;
  }

  get size() {
    return this.items.length;
  }

  peek() {
    return this.items[0];
  }

  /** @param {string} item */
  push(item) {
    const items = this.items;
    let at = items.push(item) - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (items[parent] <= item) break;
      items[at] = items[parent];
      at = parent;
    }
    items[at] = item;
  }

  pop() {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      let at = 0;
      for (;;) {
        let child = 2 * at + 1;
        if (child >= items.length) break;
        if (child + 1 < items.length && items[child + 1] < items[child]) child += 1;
        if (items[child] >= last) break;
        items[at] = items[child];
        at = child;
      }
      items[at] = last;
    }
    return top;
  }
}
