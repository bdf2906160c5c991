import { packageConfig } from '../../tsup.shared';

export default packageConfig({ index: 'src/index.ts', node: 'src/node.ts', cli: 'src/cli.ts' }, { platform: 'node' });
