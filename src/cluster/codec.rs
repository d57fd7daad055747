//! How Discern's own operators travel to workers: a `BoundedAggregateExec` is written as the
//! one-stage `AggregateExec` it computes (over a placeholder input, the real input travelling
//! as the node's child) and rebuilt as a `BoundedAggregateExec` on the worker, so that a
//! worker's aggregation keeps within the worker's memory limit as the single node's does.
//!
//! Aggregate functions inside travel by name, like every function in datafusion-distributed's
//! plans: workers have every Discern function registered under the same name and instance.

use std::sync::Arc;

use datafusion::common::{Result, internal_err, not_impl_err};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::physical_plan::{
    DefaultPhysicalExtensionCodec, PhysicalExtensionCodec, PhysicalProtoConverterExtension,
};

use crate::bounded_aggregate::BoundedAggregateExec;

/// The codec registered on the coordinator and on every worker (same codecs, same order).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct DiscernCodec;

impl PhysicalExtensionCodec for DiscernCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = inputs else {
            return internal_err!(
                "BoundedAggregateExec has one input, the plan gives {}",
                inputs.len()
            );
        };
        let described = physical_plan_from_bytes_with_extension_codec(
            buf,
            ctx,
            &DefaultPhysicalExtensionCodec {},
        )?;
        let Some(aggregate) = described.downcast_ref::<AggregateExec>() else {
            return internal_err!("BoundedAggregateExec is not described by an AggregateExec");
        };
        let aggregate = AggregateExec::try_new(
            *aggregate.mode(),
            aggregate.group_expr().clone(),
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            Arc::clone(input),
            aggregate.input_schema(),
        )?;
        Ok(Arc::new(BoundedAggregateExec::try_new(
            &aggregate,
            Arc::clone(input),
        )?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(bounded) = node.downcast_ref::<BoundedAggregateExec>() else {
            return not_impl_err!("Discern's codec does not encode {}", node.name());
        };
        let placeholder = Arc::new(EmptyExec::new(bounded.input_schema()));
        let described = bounded.as_aggregate(placeholder)?;
        let bytes = physical_plan_to_bytes_with_extension_codec(
            Arc::new(described),
            &DefaultPhysicalExtensionCodec {},
        )?;
        buf.extend_from_slice(&bytes);
        Ok(())
    }
}
