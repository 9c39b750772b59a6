/** Runs `work` over `inputs` in order, at most `limit` at a time; rejects with the first failure. */
export async function eachLimit<T>(inputs: readonly T[], limit: number, work: (input: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const i = next++;
      await work(inputs[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, inputs.length) }, worker));
}
