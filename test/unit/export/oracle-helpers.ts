/** Small wrappers the oracle test uses: open a model's config/layout, and read a PEFT adapter into the engine's layout. */
import { openModel, type ModelConfig, type WeightsLayout } from '../../../src-main/engine/models';
import { peftToLora, readPeftAdapter } from '../../../src-main/export';
export { engineLogits } from '../../../src-main/export';

export async function openModelForTest(dir: string): Promise<{ config: ModelConfig; layout: WeightsLayout }> {
  const { config, layout, weights } = await openModel(dir);
  await weights.close();
  return { config, layout };
}

export async function peftLora(dir: string, config: ModelConfig, layout: WeightsLayout) {
  return peftToLora(await readPeftAdapter(dir), config, layout);
}
